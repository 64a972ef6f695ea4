"""multi-dSprites (App. C.2): 2-4 dSprites shapes (square, ellipse, heart) with random
position, scale, rotation and colour, drawn back to front over black, 64×64.

The factors follow dSprites' grid: 6 scales in [0.5, 1], 40 rotations in [0, 2π),
32 positions per axis. Shapes are rasterised from their geometry at pixel centres,
with no anti-aliasing, like the original sprites. Our own reading of the sizes:
at scale 1 a square's half-side is 0.16 N (about 10 px at 64), an ellipse's
half-axes 0.2 N × 0.1 N, a heart's half-width 0.16 N.
"""
import math

import torch

from .polygons import paint

SHAPES = ("square", "ellipse", "heart")
SCALES = torch.linspace(0.5, 1.0, 6)
ROTATIONS = torch.arange(40) * (2 * math.pi / 40)
POSITIONS = torch.linspace(0.0, 1.0, 32)
OBJECTS = (2, 4)
SLOTS = OBJECTS[1]
SIZE = 0.16        # half-extent at scale 1, as a fraction of the image
MARGIN = 0.2       # positions span [MARGIN, 1 - MARGIN] of the image, so shapes stay mostly inside


def generate(n, seed, image_size=64, device="cpu", chunk=2000):
    """n images from a seed -> {"images": uint8 [n, N, N, 3], "amodal": bool [n, 4, N, N] back to front,
    "count": [n], "shape", "scale", "rotation", "position", "colour"} (slots past count are empty)."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, SLOTS)
    count = torch.randint(OBJECTS[0], OBJECTS[1] + 1, (n,), generator=g)
    params = {
        "shape": torch.randint(len(SHAPES), shape, generator=g),
        "scale": SCALES[torch.randint(len(SCALES), shape, generator=g)],
        "rotation": ROTATIONS[torch.randint(len(ROTATIONS), shape, generator=g)],
        "position": MARGIN + (1 - 2 * MARGIN) * POSITIONS[torch.randint(len(POSITIONS), shape + (2,), generator=g)],
        "colour": torch.rand(shape + (3,), generator=g),
    }
    present = torch.arange(SLOTS) < count[:, None]
    amodal = torch.cat([sprite_masks(params["shape"][i:i + chunk].to(device), params["scale"][i:i + chunk].to(device),
                                     params["rotation"][i:i + chunk].to(device),
                                     params["position"][i:i + chunk].to(device), image_size)
                        for i in range(0, n, chunk)])
    amodal &= present.to(device)[..., None, None]
    return {"images": paint(amodal, params["colour"].to(device)), "amodal": amodal, "count": count, **params}


def sprite_masks(shape, scale, rotation, position, image_size):
    """Pixels whose centres lie inside each sprite.

    shape: int [n, K] (index into SHAPES); scale, rotation: [n, K]; position: [n, K, 2] (row, col) in [0, 1]
    -> bool [n, K, N, N]
    """
    axis = (torch.arange(image_size, device=scale.device) + 0.5) / image_size
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    dr = rows - position[..., 0, None, None]
    dc = cols - position[..., 1, None, None]
    cos, sin = rotation.cos()[..., None, None], rotation.sin()[..., None, None]
    # sprite coordinates: u to the right, v up, in units of the sprite's half-extent
    extent = (SIZE * scale)[..., None, None]
    u = (cos * dc + sin * dr) / extent
    v = (sin * dc - cos * dr) / extent
    square = (u.abs() <= 1) & (v.abs() <= 1)
    ellipse = (u / 1.25) ** 2 + (v / 0.625) ** 2 <= 1
    hx, hy = u * 1.1, v * 1.1 + 0.15  # the heart curve (x² + y² - 1)³ ≤ x² y³, centred on its box
    heart = (hx ** 2 + hy ** 2 - 1) ** 3 <= hx ** 2 * hy ** 3
    kind = shape[..., None, None]
    return torch.where(kind == 0, square, torch.where(kind == 1, ellipse, heart))


def single_objects(data, index):
    """The ground-truth single-object images (for per-object FID): each present sprite
    alone over black, uint8 [M, N, N, 3] for the images in `index`."""
    amodal, colour, count = data["amodal"][index], data["colour"][index], data["count"][index]
    keep = torch.arange(SLOTS) < count[:, None]
    return paint(amodal[keep][:, None], colour[keep][:, None])
