"""CLEVR-like scenes (App. C.1), 96×96, drawn by our own torch ray caster (render.py).

Scene parameters follow CLEVR's generator as the paper's authors configured it
(TitasAnciukevicius/clevr-dataset-gen): the camera and lamps of CLEVR's base scene
(±0.5 jitter per coordinate for the camera, ±1 for the lamps), 3 shapes, CLEVR's colours,
2 materials, 2 sizes (a half-extent: the generator's test for shrinking cubes by √2 never
matches its cube's name, so its cubes are as large as its spheres, and so are ours),
objects on the ground in x, y ∈ [-3, 3], at least 0.25 apart surface to surface (by that
half-extent) and 0.4 apart along the camera's left and behind directions, a random azimuth
each. Variants, as the fork's history has them:

    clevr3      its defaults of January 2020: 2-3 objects, sizes 1.3 / 1.0, at least 10 visible
                pixels each, 8 colours with red (215, 35, 35) and cyan (41, 215, 208), a rougher metal,
                96×96 rendered directly
    clevr5      from commit 426f628 on (sizes from its head): 3-5 objects, sizes 0.5 / 0.4, at least
                50 visible pixels each, 7 colours (no gray), CLEVR's metal, a 160×120 frame centre-
                cropped to 96×96 (render.py's zoom 160/96). The fork counts visible pixels in the
                whole frame; we count them in the crop, so no object lies wholly outside the image.
    clevr5-vbg  as clevr5, the ground's diffuse reflectivity one of 6 log-spaced values in [0.1, 0.8]

Scenes that break a constraint are redrawn, a batch at a time. Objects are listed
back to front by the distance from the camera to their centres; a test checks that
this order explains the rendered occlusions.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from . import render

SHAPES = ("sphere", "cube", "cylinder")
MATERIALS = ("rubber", "metal")
COLOURS = {  # CLEVR's colours, 0-255 RGB
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51),
}
CLEVR3_COLOURS = {**COLOURS, "red": (215, 35, 35), "cyan": (41, 215, 208)}  # the fork's, October 2019
CLEVR5_COLOURS = {k: v for k, v in COLOURS.items() if k != "gray"}  # the fork's, from January 2020
CAMERA = (7.4811, -6.5076, 5.3437)  # CLEVR's base scene, looking at the origin
LIGHTS = ((6.4467, -2.9052, 4.2584), (-4.6711, -4.0136, 3.0112), (-1.1685, 2.6460, 5.8157))  # key, fill, back
CAMERA_JITTER, LIGHT_JITTER = 0.5, 1.0
AREA = 3.0          # x, y ∈ [-3, 3]
MIN_DIST = 0.25     # surface to surface
MARGIN = 0.4        # along the camera's left and behind directions
BLOCK = 16          # scenes drawn at a time


ROUGH_METAL = (0.425, 0.402)  # the authors' CLEVR-3 metal: GGX alpha of its two lobes (CLEVR's: render.METAL)


@dataclass(frozen=True)
class Variant:
    objects: tuple          # (fewest, most)
    sizes: tuple            # (large, small) radius
    min_visible: int        # visible pixels every object must keep
    grounds: tuple = (0.8,)  # the ground's diffuse reflectivity, one drawn per scene
    metal: tuple = render.METAL  # GGX alpha of the metal's two lobes
    zoom: float = 1.0       # the image shows the centre 1/zoom of CLEVR's frame
    colours: tuple = tuple(COLOURS.values())  # 0-255 RGB; colour_index counts in this order


FROM_160x120 = 160 / 96  # a 96×96 crop of a 160×120 frame
VARIANTS = {
    "clevr3": Variant((2, 3), (1.3, 1.0), 10, metal=ROUGH_METAL, colours=tuple(CLEVR3_COLOURS.values())),
    "clevr5": Variant((3, 5), (0.5, 0.4), 50, zoom=FROM_160x120, colours=tuple(CLEVR5_COLOURS.values())),
    "clevr5-vbg": Variant((3, 5), (0.5, 0.4), 50, tuple(torch.logspace(math.log10(0.1), math.log10(0.8), 6).tolist()),
                          zoom=FROM_160x120, colours=tuple(CLEVR5_COLOURS.values())),
}


def draw_scenes(n, variant, g):
    """Random scene parameters for n scenes; see render.py for the fields. Also "colour_index"
    and "size_index" [n, K] (0 large, 1 small), and "ok" [n]: False where place() found no room.
    """
    K = variant.objects[1]
    count = torch.randint(variant.objects[0], K + 1, (n,), generator=g)
    size_index = torch.randint(2, (n, K), generator=g)
    shape = torch.randint(3, (n, K), generator=g)
    radius = torch.tensor(variant.sizes)[size_index]
    jitter = lambda scale, *s: scale * (2 * torch.rand(*s, generator=g) - 1)  # noqa: E731
    lights = torch.tensor(LIGHTS) + jitter(LIGHT_JITTER, n, 3, 3)  # the lamps' centres
    colour_index = torch.randint(len(variant.colours), (n, K), generator=g)
    scene = {
        "shape": shape,
        "size": radius,
        "size_index": size_index,
        "angle": 2 * math.pi * torch.rand(n, K, generator=g),
        "colour_index": colour_index,
        "colour": torch.tensor(variant.colours)[colour_index] / 255,
        "metal": torch.rand(n, K, generator=g) < 0.5,
        "present": torch.arange(K) < count[:, None],
        "camera": torch.tensor(CAMERA) + jitter(CAMERA_JITTER, n, 3),
        "light_position": lights,
        "ground": torch.tensor(variant.grounds)[torch.randint(len(variant.grounds), (n,), generator=g)],
    }
    scene["centre"], scene["ok"] = place(scene, g)
    return scene


def ground_axes(camera):
    """The camera's behind and left directions on the ground: two [n, 2] unit vectors."""
    behind = -camera[:, :2] / camera[:, :2].norm(dim=-1, keepdim=True)
    return behind, torch.stack([-behind[:, 1], behind[:, 0]], -1)


def place(scene, g, tries=50):
    """CLEVR's placement, batched: each object in turn takes the first of `tries` random
    spots that keeps MIN_DIST from the objects before it (surface to surface by their
    half-extent, as CLEVR tests it, cubes too) and MARGIN along the camera's behind and left directions.

    -> centre [n, K, 2], ok bool [n] (False: some object found no spot; redraw the scene)
    """
    n, K = scene["present"].shape
    radius = scene["size"]
    axes = ground_axes(scene["camera"])
    centre, ok = torch.zeros(n, K, 2), torch.ones(n, dtype=torch.bool)
    for k in range(K):
        spot = AREA * (2 * torch.rand(n, tries, 2, generator=g) - 1)
        good = torch.ones(n, tries, dtype=torch.bool)
        for j in range(k):
            diff = spot - centre[:, j, None]
            far = diff.norm(dim=-1) - radius[:, k, None] - radius[:, j, None] >= MIN_DIST
            apart = torch.stack([(diff * a[:, None]).sum(-1).abs() >= MARGIN for a in axes]).all(0)
            good &= far & apart | ~scene["present"][:, j, None]
        centre[:, k] = spot[torch.arange(n), good.int().argmax(1)]
        ok &= good.any(1) | ~scene["present"][:, k]
    return centre, ok


def back_to_front(scene):
    """Sort each scene's objects far to near from the camera, absent ones last: the permutation [n, K]."""
    ground_point = torch.cat([scene["centre"], scene["size"][..., None]], -1)
    distance = (ground_point - scene["camera"][:, None]).norm(dim=-1)
    return torch.where(scene["present"], -distance, math.inf).argsort(1)


PER_OBJECT = ("shape", "size", "size_index", "centre", "angle", "colour_index", "colour", "metal", "present")


def sort_objects(scene, order):
    """The scene with its objects (the PER_OBJECT fields, [n, K, ...]) in the given order [n, K]."""
    def sort(v):
        return v.gather(1, order.view(*order.shape, *[1] * (v.dim() - 2)).expand_as(v))
    return {k: sort(v) if k in PER_OBJECT else v for k, v in scene.items()}


def take(scene, rows):
    return {k: v[rows] for k, v in scene.items()}


SCENE_ONLY = ("size", "colour", "camera", "light_position", "ground")


def generate(n, seed, variant="clevr3", image_size=96, device="cpu", chunk=None, samples=2, params=False):
    """n scenes from a seed: the same seed gives the same scenes (on the same kind of device).

    -> {"images": uint8 [n, N, N, 3], "amodal": bool [n, K, N, N] back to front, "count": [n],
        and per object, in the same order: "shape", "size_index", "colour_index", "metal", "centre", "angle",
        "visible" (pixels where it is the nearest thing)}; with params, also the rest of each scene's
        parameters (SCENE_ONLY and "present"), which another renderer needs to draw the same scenes.
    """
    variant = VARIANTS[variant] if isinstance(variant, str) else variant
    per_call = -(-(chunk or (1024 if str(device).startswith("cuda") else BLOCK)) // BLOCK)  # blocks a render call
    g = torch.Generator().manual_seed(seed)

    def draw(blocks):
        """The seed's next `blocks` blocks of scenes that place() could lay out, sorted back to front.
        Scenes are drawn BLOCK at a time whatever the chunk, so the first n scenes of a seed are the
        same for any n and chunk."""
        parts = [draw_scenes(BLOCK, variant, g) for _ in range(blocks)]
        scene = {k: torch.cat([b[k] for b in parts]) for k in parts[0]}
        scene = take(scene, scene.pop("ok"))
        return sort_objects(scene, back_to_front(scene))

    def blocks_for(scenes):  # a render call holds per_call blocks at most
        return min(per_call, -(-scenes // BLOCK))

    kept, have = [], 0
    with ThreadPoolExecutor(1) as cpu:  # the CPU draws the next chunk's scenes while the device renders this one
        upcoming = cpu.submit(draw, blocks_for(n))
        while have < n:
            scene = (upcoming or cpu.submit(draw, blocks_for(n - have))).result()
            left = n - have - len(scene["present"])  # still to come if this chunk keeps all its scenes
            upcoming = cpu.submit(draw, blocks_for(left)) if left > 0 else None
            on_device = {k: v.to(device) for k, v in scene.items()}

            def enough(visible):  # every object shows at least min_visible pixels: the others are drawn again
                return (((visible >= 0.5).sum((2, 3)) >= variant.min_visible) | ~on_device["present"]).all(1)
            image, coverage, visible, ok = render.render(on_device, image_size, samples, variant.zoom, variant.metal,
                                                         keep=enough)
            ok = ok.cpu()
            out = {k: v[ok] for k, v in scene.items()}
            out["images"] = (image * 255).round().to(torch.uint8).cpu()
            out["amodal"] = (coverage >= 0.5).cpu() & out["present"][:, :, None, None]
            out["visible"] = (visible >= 0.5).sum((2, 3)).cpu()
            kept.append(out)
            have += int(ok.sum())
    out = {k: torch.cat([part[k] for part in kept])[:n] for k in kept[0]}
    out["count"] = out["present"].sum(1)
    if not params:
        for k in (*SCENE_ONLY, "present"):
            out.pop(k)
    return out


def single_objects(n, seed, variant="clevr3", image_size=96, device="cpu", samples=2):
    """n ground-truth objects, each rendered alone in its scene (same camera, lights, ground and
    shadow), for the per-object FID of Table 1: uint8 [n, N, N, 3]."""
    variant = VARIANTS[variant] if isinstance(variant, str) else variant
    g = torch.Generator().manual_seed(seed)
    out, have = [], 0
    while have < n:
        scene = draw_scenes(BLOCK, variant, g)
        scene = take(scene, scene.pop("ok"))
        K = scene["present"].shape[1]
        alone = {k: v.repeat_interleave(K, 0) for k, v in scene.items()}  # each scene once per object
        alone["present"] = alone["present"] & torch.eye(K, dtype=torch.bool).repeat(len(scene["present"]), 1)
        alone = take(alone, alone["present"].any(1))
        image, _, _ = render.render({k: v.to(device) for k, v in alone.items()}, image_size, samples, variant.zoom,
                                    variant.metal)
        out.append((image * 255).round().to(torch.uint8).cpu())
        have += len(image)
    return torch.cat(out)[:n]


def generators():
    """One generate function per variant, with the dataset interface's signature."""
    def make(name):
        def generate_variant(n, seed, image_size=96, device="cpu"):
            return generate(n, seed, name, image_size, device)
        generate_variant.__doc__ = f"{name}: " + (generate.__doc__ or "")
        return generate_variant
    return {name: make(name) for name in VARIANTS}
