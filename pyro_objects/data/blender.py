"""CLEVR scenes rendered by Blender's Cycles on the CPU (the `bpy` module): the reference for render.py.

The scene is built in code after the CLEVR generator's base scene (facebookresearch/clevr-dataset-gen,
as the paper's authors used it in TitasAnciukevicius/clevr-dataset-gen, Blender 2.79):

- a 35 mm lens on a 32 mm sensor, looking at the origin;
- three square area lamps facing the origin, key (0.5 wide, 100 W in 2.79's units, warm), fill (0.5,
  30 W, cool) and back (1.0, 50 W, white), and a weak sun (0.45 W/m², 11.4° across) from above the
  camera's right; a black world;
- a diffuse ground that bends up into a backdrop some 14 units behind the origin;
- spheres, cubes with edges rounded by a fifth of their half-extent and cylinders with rims rounded
  by a tenth, of half-extent `size`, standing on the ground;
- CLEVR's rubber (diffuse and velvet under a Fresnel-weighted glossy coat) and metal (two GGX
  anisotropic lobes, the fork's rougher pair for CLEVR-3); colours as linear reflectances;
- Cycles: CLEVR's bounce limits (12 in all, 4 diffuse, 4 glossy), glossy blur 2, the standard view
  transform, 8-bit output. CLEVR rendered 512 samples a pixel; we default to SAMPLES.

Blender 5.0 reads the 2.79 files with area lamps' power scaled by π/4 to keep their look; the
powers in render.LAMPS are those scaled values. Lamps, sun, rubber and the metals' roughness are
render.py's and clevr.py's constants, so both renderers draw one description of the scene.

It renders OUR scene parameters (clevr.draw_scenes: the same objects, camera, lamp positions and
ground as render.py draws), so the two renderers can be compared scene for scene. Ground truth:
one extra Cycles pass per scene at twice the resolution, one ray through each of its pixel
centres (render.py's 2×2 rays a pixel), where every object is a transparent emitter of its own
power of two, on front faces only (all three shapes are convex): the red channel sums the objects
a ray passes through, the green one keeps the first it meets. As in render.py, a pixel belongs to
an object's amodal mask (or shows it) where at least two of its four rays do.
"""
import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError
from . import Dataset, clevr, shards, split_seed
from .render import LAMPS, RUBBER, SUN

SAMPLES = 32           # Cycles samples a pixel, then denoised (CLEVR: 512, not denoised)
LENS, SENSOR = 35.0, 32.0
BOUNCES = {"max_bounces": 12, "diffuse_bounces": 4, "glossy_bounces": 4, "transmission_bounces": 12,
           "transparent_max_bounces": 8}
CUBE_ROUND, CYLINDER_ROUND = 0.2, 0.1   # edge radius over half-extent
VELVET = 0.6  # the rubber's velvet sigma (render.py leaves the velvet out)
# The backdrop: its height z above the ground at signed distance d (along BACKDROP_AXIS) behind the
# line through BACKDROP_ORIGIN; the scene's origin lies at d = -14. Knots of CLEVR's curve.
BACKDROP_ORIGIN, BACKDROP_AXIS = (-24.0628, -17.9967), (-0.9032, 0.4292)
BACKDROP = ((-23.6, 0.0), (-16.5, 0.0), (-12.3, 0.011), (-9.96, 0.031), (-6.96, 0.099), (-4.56, 0.241),
            (-2.66, 0.499), (-1.17, 0.925), (0.0, 1.58), (1.11, 2.92), (1.92, 4.99), (2.55, 7.99),
            (3.09, 12.18), (3.63, 17.83), (4.08, 23.2))
SHAPES = ("sphere", "cube", "cylinder")  # clevr.SHAPES' order


def require_bpy():
    try:
        import bpy
    except ImportError:
        raise InputError("bpy is not installed: pip install -e '.[blender]'") from None
    return bpy


# Meshes, as numpy arrays: vertices [V, 3], faces (lists of vertex indices), unit normals [V, 3].

def revolve(profile, normals, segments):
    """A surface of revolution about z from a profile [P, 2] of (r, z) running from the top of the
    axis (r = 0) to its bottom, with the profile's unit normals [P, 2] of (n_r, n_z)."""
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    cos, sin = np.cos(phi)[None], np.sin(phi)[None]
    ring = lambda a: np.stack([a[1:-1, :1] * cos, a[1:-1, :1] * sin, np.repeat(a[1:-1, 1:], segments, 1)], -1)  # noqa: E731
    verts = np.concatenate([[[0, 0, profile[0, 1]]], ring(profile).reshape(-1, 3), [[0, 0, profile[-1, 1]]]])
    norms = np.concatenate([[[0, 0, normals[0, 1]]], ring(normals).reshape(-1, 3), [[0, 0, normals[-1, 1]]]])
    rings, last = len(profile) - 2, len(verts) - 1
    at = lambda i, j: 1 + i * segments + j % segments  # noqa: E731
    faces = [(0, at(0, j), at(0, j + 1)) for j in range(segments)]  # anticlockwise seen from outside
    faces += [(at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)) for i in range(rings - 1) for j in range(segments)]
    faces += [(last, at(rings - 1, j + 1), at(rings - 1, j)) for j in range(segments)]
    return verts, faces, norms


def sphere_mesh(segments=64):
    theta = np.linspace(0, np.pi, segments // 2 + 1)
    profile = np.stack([np.sin(theta), np.cos(theta)], -1)
    return revolve(profile, profile, segments)


def rounded_cylinder_mesh(rho=CYLINDER_ROUND, segments=64, arc=6):
    """Radius 1, z in [-1, 1], rims rounded with radius rho."""
    a = np.linspace(0, np.pi / 2, arc + 1)
    top = np.stack([1 - rho + rho * np.sin(a), 1 - rho + rho * np.cos(a)], -1)
    top_n = np.stack([np.sin(a), np.cos(a)], -1)
    profile = np.concatenate([[[0, 1]], top, top[::-1] * [1, -1], [[0, -1]]])
    normals = np.concatenate([[[0, 1]], top_n, top_n[::-1] * [1, -1], [[0, -1]]])
    return revolve(profile, normals, segments)


def rounded_box_mesh(rho=CUBE_ROUND, flat=4, arc=5):
    """Half-extent 1, edges and corners rounded with radius rho: each face's grid pushed onto the
    rounded box (the point nearest the inner box, moved out by rho along the way to it)."""
    inner = 1 - rho
    ticks = np.unique(np.concatenate([-np.cos(np.linspace(0, np.pi / 2, arc + 1)) * rho - inner,
                                      np.linspace(-inner, inner, flat + 1),
                                      np.sin(np.linspace(0, np.pi / 2, arc + 1)) * rho + inner]).round(9))
    n = len(ticks)
    u, v = np.meshgrid(ticks, ticks, indexing="ij")
    verts, faces = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            p = np.zeros((n, n, 3))
            p[..., axis] = sign
            p[..., (axis + 1) % 3], p[..., (axis + 2) % 3] = u, v
            base = len(verts) * n * n
            quads = [(base + i * n + j, base + (i + 1) * n + j, base + (i + 1) * n + j + 1, base + i * n + j + 1)
                     for i in range(n - 1) for j in range(n - 1)]
            faces += quads if sign > 0 else [q[::-1] for q in quads]  # (u, v, axis) is right-handed
            verts.append(p.reshape(-1, 3))
    p = np.concatenate(verts)
    q = p.clip(-inner, inner)
    out = (p - q) / np.linalg.norm(p - q, axis=-1, keepdims=True)
    p = q + rho * out
    keys, index = np.unique(p.round(6), axis=0, return_inverse=True)  # faces meet along shared edges
    index = index.reshape(-1)
    normals = np.zeros_like(keys)
    normals[index] = out
    faces = [tuple(index[list(f)]) for f in faces]
    return keys, [f for f in faces if len(set(f)) == len(f)], normals


def backdrop_mesh(steps=160, half_width=30.0):
    """The ground and its backdrop, in world coordinates: a sheet over the BACKDROP profile."""
    from scipy.interpolate import PchipInterpolator
    knots = np.array(BACKDROP)
    curve = PchipInterpolator(knots[:, 0], knots[:, 1])
    d = np.linspace(knots[0, 0], knots[-1, 0], steps)
    z, slope = curve(d), curve.derivative()(d)
    axis, origin = np.array(BACKDROP_AXIS), np.array(BACKDROP_ORIGIN)
    across = np.array([-axis[1], axis[0]])
    verts, normals = [], []
    for w in (-half_width, half_width):  # centred across on the scene's origin
        xy = origin + d[:, None] * axis + (w - origin @ across) * across
        verts.append(np.concatenate([xy, z[:, None]], -1))
        n = np.concatenate([-slope[:, None] * axis, np.ones((steps, 1))], -1)
        normals.append(n / np.linalg.norm(n, axis=-1, keepdims=True))
    faces = [(i, i + 1, steps + i + 1, steps + i) for i in range(steps - 1)]
    verts, normals = np.concatenate(verts), np.concatenate(normals)
    if np.cross(verts[1] - verts[0], verts[steps] - verts[0])[2] < 0:  # face up
        faces = [f[::-1] for f in faces]
    return verts, faces, normals


@contextlib.contextmanager
def quiet():
    """Silence what Blender prints on the process's stdout (a line for every file it saves)."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def look_at(position, target=(0.0, 0.0, 0.0)):
    """The 4×4 world matrix of a camera or lamp at position whose -z axis points at target, world z up."""
    import mathutils
    position = mathutils.Vector(position)
    back = (position - mathutils.Vector(target)).normalized()
    up = mathutils.Vector((0.0, 0.0, 1.0))
    right = up.cross(back)
    right = right.normalized() if right.length > 1e-6 else mathutils.Vector((1.0, 0.0, 0.0))
    up = back.cross(right)
    m = mathutils.Matrix((right, up, back)).transposed().to_4x4()
    m.translation = position
    return m


def new_mesh(bpy, name, verts, faces, normals):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts.tolist(), [], [list(map(int, f)) for f in faces])
    mesh.shade_smooth()
    mesh.normals_split_custom_set_from_vertices(normals.tolist())  # the surfaces' exact normals
    return mesh


def node(tree, kind, **inputs):
    n = tree.nodes.new(kind)
    for key, value in inputs.items():
        n.inputs[key].default_value = value
    return n


def object_material(bpy, name, metal_alphas):
    """CLEVR's rubber and metal in one material: the "metal" mix factor (0 or 1) picks one,
    the "colour" RGB node sets the reflectance."""
    mat = bpy.data.materials.new(name)
    tree = mat.node_tree
    tree.nodes.clear()
    colour = tree.nodes.new("ShaderNodeRGB")
    colour.name = "colour"
    link = tree.links.new
    # rubber: diffuse under velvet at grazing angles, then a Fresnel-weighted glossy coat
    diffuse = node(tree, "ShaderNodeBsdfDiffuse", Roughness=0.0)
    velvet = node(tree, "ShaderNodeBsdfSheen", Roughness=VELVET)
    velvet.distribution = "ASHIKHMIN"
    base = node(tree, "ShaderNodeMixShader")
    link(node(tree, "ShaderNodeFresnel", IOR=RUBBER["ior"] + 0.2).outputs[0], base.inputs[0])
    link(diffuse.outputs[0], base.inputs[1])
    link(velvet.outputs[0], base.inputs[2])
    coat = node(tree, "ShaderNodeBsdfAnisotropic", Color=(*[RUBBER["coat"]] * 3, 1.0), Roughness=math.sqrt(RUBBER["alpha"]),
                Anisotropy=0.0)
    coat.distribution = "BECKMANN"
    rubber = node(tree, "ShaderNodeMixShader")
    link(node(tree, "ShaderNodeFresnel", IOR=RUBBER["ior"]).outputs[0], rubber.inputs[0])
    link(base.outputs[0], rubber.inputs[1])
    link(coat.outputs[0], rubber.inputs[2])
    for bsdf in (diffuse, velvet):
        link(colour.outputs[0], bsdf.inputs["Color"])
    # metal: a broad and a sharp anisotropic GGX lobe, 0.4 and 0.6 of it
    lobes = []
    for alpha in metal_alphas:
        lobe = node(tree, "ShaderNodeBsdfAnisotropic", Roughness=math.sqrt(alpha), Anisotropy=0.25)
        lobe.distribution = "GGX"
        link(colour.outputs[0], lobe.inputs["Color"])
        lobes.append(lobe)
    metal = node(tree, "ShaderNodeMixShader", Fac=0.6)
    link(lobes[0].outputs[0], metal.inputs[1])
    link(lobes[1].outputs[0], metal.inputs[2])
    pick = node(tree, "ShaderNodeMixShader")
    pick.name = "metal"
    link(rubber.outputs[0], pick.inputs[1])
    link(metal.outputs[0], pick.inputs[2])
    link(pick.outputs[0], tree.nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    return mat


def mask_material(bpy, name, slot):
    """Transparent everywhere, emitting 2**slot on front faces: red for every crossing, green for
    the first surface a camera ray meets."""
    mat = bpy.data.materials.new(name)
    tree = mat.node_tree
    tree.nodes.clear()
    link = tree.links.new
    front = node(tree, "ShaderNodeMath", Value=1.0)
    front.operation = "SUBTRACT"
    link(tree.nodes.new("ShaderNodeNewGeometry").outputs["Backfacing"], front.inputs[1])
    first = node(tree, "ShaderNodeMath", Value=0.5)
    first.operation = "LESS_THAN"
    link(tree.nodes.new("ShaderNodeLightPath").outputs["Transparent Depth"], first.inputs[0])
    green = node(tree, "ShaderNodeMath")
    green.operation = "MULTIPLY"
    link(front.outputs[0], green.inputs[0])
    link(first.outputs[0], green.inputs[1])
    rgb = tree.nodes.new("ShaderNodeCombineColor")
    link(front.outputs[0], rgb.inputs[0])
    link(green.outputs[0], rgb.inputs[1])
    emit = node(tree, "ShaderNodeEmission", Strength=float(2 ** slot))
    link(rgb.outputs[0], emit.inputs["Color"])
    both = tree.nodes.new("ShaderNodeAddShader")
    link(tree.nodes.new("ShaderNodeBsdfTransparent").outputs[0], both.inputs[0])
    link(emit.outputs[0], both.inputs[1])
    link(both.outputs[0], tree.nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    return mat


class Stage:
    """One Blender scene, built once and re-posed for every CLEVR scene: K object slots (a sphere,
    a cube and a cylinder each, all but one hidden), the lamps, the camera and the backdrop."""

    def __init__(self, K, width, height, metal, zoom=1.0, samples=SAMPLES, denoise=True, threads=None):
        bpy = self.bpy = require_bpy()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = self.scene = bpy.context.scene
        self.samples, self.denoise, self.width, self.height = samples, denoise, width, height
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        for key, value in BOUNCES.items():
            setattr(scene.cycles, key, value)
        scene.cycles.blur_glossy = 2.0
        scene.cycles.caustics_reflective = scene.cycles.caustics_refractive = True
        scene.cycles.use_denoising = denoise  # MSE to 512 samples: 2e-5 at 32 denoised, 1e-4 at 32, 2e-5 at 128
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.use_adaptive_sampling = False
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
        scene.render.dither_intensity = 0.0
        scene.render.use_persistent_data = True
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.render.threads_mode = "FIXED" if threads else "AUTO"
        if threads:
            scene.render.threads = threads
        world = bpy.data.worlds.new("black")
        world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
        scene.world = world

        def add(name, data):
            obj = bpy.data.objects.new(name, data)
            scene.collection.objects.link(obj)
            return obj
        cam = bpy.data.cameras.new("camera")
        cam.lens, cam.sensor_width, cam.sensor_fit = LENS * zoom, SENSOR, "AUTO"  # zoom: the frame's centre
        self.camera = scene.camera = add("camera", cam)
        self.lamps = []
        for i, (size, power, colour) in enumerate(LAMPS):
            lamp = bpy.data.lights.new(f"lamp{i}", "AREA")
            lamp.shape, lamp.size, lamp.energy, lamp.color = "SQUARE", size, power, colour
            self.lamps.append(add(f"lamp{i}", lamp))
        sun = bpy.data.lights.new("sun", "SUN")
        sun.energy, sun.angle = SUN["strength"], SUN["angle"]
        self.sun = add("sun", sun)
        self.sun.matrix_world = look_at((0.0, 0.0, 0.0), SUN["direction"])
        self.ground = add("ground", new_mesh(bpy, "ground", *backdrop_mesh()))
        ground = bpy.data.materials.new("ground")
        self.ground_colour = ground.node_tree.nodes["Principled BSDF"]
        ground.node_tree.nodes.remove(self.ground_colour)
        diffuse = ground.node_tree.nodes.new("ShaderNodeBsdfDiffuse")
        ground.node_tree.links.new(diffuse.outputs[0], ground.node_tree.nodes["Material Output"].inputs["Surface"])
        self.ground_colour = diffuse.inputs["Color"]
        self.ground.data.materials.append(ground)
        meshes = [new_mesh(bpy, name, *make()) for name, make in
                  zip(SHAPES, (sphere_mesh, rounded_box_mesh, rounded_cylinder_mesh))]
        for mesh in meshes:
            mesh.materials.append(None)  # one material slot, filled per object
        self.slots, self.looks, self.masks_ = [], [], []
        for k in range(K):
            self.looks.append(object_material(bpy, f"look{k}", metal))
            self.masks_.append(mask_material(bpy, f"mask{k}", k))
            shapes = [add(f"{mesh.name}{k}", mesh) for mesh in meshes]
            for obj in shapes:
                obj.material_slots[0].link = "OBJECT"
            self.slots.append(shapes)
        self.tmp = tempfile.TemporaryDirectory()

    def pose(self, scene, b):
        """Set the b-th scene of a batch of scene parameters (clevr.draw_scenes' fields)."""
        self.camera.matrix_world = look_at(scene["camera"][b].tolist())
        for lamp, position in zip(self.lamps, scene["light_position"][b].tolist()):
            lamp.matrix_world = look_at(position)
        self.ground_colour.default_value = (*[float(scene["ground"][b])] * 3, 1.0)
        for k, shapes in enumerate(self.slots):
            for j, obj in enumerate(shapes):
                obj.hide_render = not (bool(scene["present"][b, k]) and int(scene["shape"][b, k]) == j)
            size = float(scene["size"][b, k])
            obj = shapes[int(scene["shape"][b, k])]
            obj.location = (*scene["centre"][b, k].tolist(), size)
            obj.scale = (size, size, size)
            obj.rotation_euler = (0.0, 0.0, float(scene["angle"][b, k]))
            look = self.looks[k].node_tree.nodes
            look["colour"].outputs[0].default_value = (*scene["colour"][b, k].tolist(), 1.0)
            look["metal"].inputs[0].default_value = float(scene["metal"][b, k])

    def shoot(self, name, file_format, scale=1):
        """Render the posed scene at scale times the image size: [scale * H, scale * W, 4] floats."""
        settings = self.scene.render.image_settings
        settings.file_format = file_format
        settings.color_mode, settings.color_depth = ("RGB", "8") if file_format == "PNG" else ("RGBA", "32")
        W, H = scale * self.width, scale * self.height
        self.scene.render.resolution_x, self.scene.render.resolution_y = W, H
        self.scene.render.filepath = str(Path(self.tmp.name) / name)
        with quiet():
            self.bpy.ops.render.render(write_still=True)
        image = self.bpy.data.images.load(self.scene.render.filepath)
        pixels = np.empty(W * H * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        self.bpy.data.images.remove(image)
        return pixels.reshape(H, W, 4)[::-1]  # Blender's rows run bottom to top

    def image(self):
        """The posed scene: uint8 [H, W, 3]."""
        settings = self.scene.cycles
        settings.samples, settings.pixel_filter_type, settings.filter_width = self.samples, "BLACKMAN_HARRIS", 1.5
        settings.use_denoising = self.denoise
        for obj, look in zip(self.slots, self.looks):
            for o in obj:
                o.material_slots[0].material = look
        self.set_lights(True)
        return (self.shoot("image.png", "PNG")[..., :3] * 255).round().astype(np.uint8)

    def masks(self):
        """The posed scene's objects as render.py counts them, from 2×2 rays through each pixel:
        amodal and visible bool [K, H, W], where at least two of the rays pass through the object
        (amodal) or meet it first (visible)."""
        settings = self.scene.cycles
        settings.samples, settings.pixel_filter_type, settings.filter_width = 1, "BOX", 0.01  # one ray, the centre
        settings.use_denoising = False
        for obj, mask in zip(self.slots, self.masks_):
            for o in obj:
                o.material_slots[0].material = mask
        self.set_lights(False)
        pixels = self.shoot("masks.exr", "OPEN_EXR", scale=2)
        bits = 2 ** np.arange(len(self.slots))[:, None, None]
        amodal = (np.rint(pixels[..., 0]).astype(np.int64) & bits) > 0
        visible = np.rint(pixels[None, ..., 1]).astype(np.int64) == bits
        pool = lambda m: m.reshape(len(bits), self.height, 2, self.width, 2).sum((2, 4)) >= 2  # noqa: E731
        return pool(amodal), pool(visible)

    def set_lights(self, on):
        """Lamps and ground for the image; neither for the masks (emitters over a black world)."""
        for obj in (*self.lamps, self.sun, self.ground):
            obj.hide_render = not on
        self.scene.cycles.max_bounces = BOUNCES["max_bounces"] if on else 0
        self.scene.cycles.transparent_max_bounces = BOUNCES["transparent_max_bounces"] if on else 4 * len(self.slots)


ATTRIBUTES = ("count", "shape", "size_index", "colour_index", "metal", "centre", "angle")
STAGE = {}  # the one Blender scene of this process, and what it was built for


def stage(K, width, height, metal, zoom, samples, denoise, threads):
    key = (K, width, height, metal, zoom, samples, denoise, threads)
    if STAGE.get("key") != key:
        STAGE.update(key=key, stage=Stage(*key))
    return STAGE["stage"]


def render(scene, N, variant="clevr3", samples=SAMPLES, denoise=True, threads=None, progress=False):
    """Blender's renders of B scenes of K slots (clevr.draw_scenes' fields, "light_position" among them):
    images uint8 [B, N, N, 3], amodal and visible bool [B, K, N, N] (Stage.masks)."""
    B, K = scene["present"].shape
    spec = clevr.VARIANTS[variant]
    st = stage(K, N, N, spec.metal, spec.zoom, samples, denoise, threads)
    images, amodal, visible = [], [], []
    for b in tqdm(range(B), desc=f"blender {variant}", unit="scene", disable=not progress, leave=False):
        st.pose(scene, b)
        images.append(st.image())
        a, v = st.masks()
        amodal.append(a & scene["present"][b, :, None, None].numpy())
        visible.append(v)
    return tuple(torch.from_numpy(np.stack(x)) for x in (images, amodal, visible))


def generate(n, seed, variant="clevr3", image_size=96, samples=SAMPLES, denoise=True, threads=None, progress=True):
    """n scenes from a seed, rendered by Blender: clevr.generate's scenes of that seed, in its order,
    less those where Blender's render leaves an object fewer visible pixels than the variant asks
    (redrawn, as clevr.py does; visible pixels counted as render.py counts them, Stage.masks).

    -> clevr.generate's fields (images, amodal [n, K, N, N] back to front, count, visible, attributes),
       and "index" [n]: each scene's place among clevr.generate(..., seed, variant)'s scenes.
    """
    spec = clevr.VARIANTS[variant]
    kept, tried, want = [], 0, n + max(4, n // 8)
    bar = tqdm(total=n, desc=f"blender {variant}", unit="scene", disable=not progress)
    while len(kept) < n:
        ours = clevr.generate(want, seed, variant, image_size, params=True)  # the first scenes of a seed never change
        for i in range(tried, want):
            one = {k: v[i:i + 1] for k, v in ours.items()}
            image, amodal, visible = render(one, image_size, variant, samples, denoise, threads)
            pixels = visible.sum((2, 3))[0]
            if not ((pixels >= spec.min_visible) | ~one["present"][0]).all():
                continue
            kept.append({**{k: one[k][0] for k in ATTRIBUTES},
                         "images": image[0], "amodal": amodal[0], "visible": pixels, "index": torch.tensor(i)})
            bar.update()
            if len(kept) == n:
                break
        tried, want = want, want + max(8, (n - len(kept)) * 2)
    bar.close()
    return {k: torch.stack([s[k] for s in kept]) for k in kept[0]}


def require_variant(name):
    """name, or an InputError where it is no CLEVR variant: Blender draws nothing else."""
    if name not in clevr.VARIANTS:
        raise InputError(f"the Blender renderer draws CLEVR only, not {name!r}: choose from {', '.join(clevr.VARIANTS)}")
    return name


def load(name, split="train", n=300, seed=0, device=None, cfg=None):
    """A Blender-rendered CLEVR Dataset: data.load's scenes of the split and seed (device and cfg unused)."""
    require_variant(name)
    data = generate(n, split_seed(seed, split), name)
    return Dataset(name, data["images"], data["amodal"], data["count"])


def settings():
    """What a cache made by this renderer records of it."""
    return {"bpy": require_bpy().app.version_string, "samples": SAMPLES, "denoised": True}


def make_reference(variant, n, out_dir, seed=0, split="eval"):
    """n Blender-rendered scenes of a CLEVR variant's split as a dataset cache (shards.make's files,
    its manifest recording renderer "blender"): the same scenes as `data make` draws, less any
    that break the visibility rule in Blender's render. -> the manifest dict"""
    return shards.make(variant, [(split, load(variant, split, n, seed))], out_dir, seed, renderer="blender",
                       settings=settings())
