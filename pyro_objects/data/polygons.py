"""overlapping-polygons (App. C.3): two filled regular polygons of 3-6 edges,
radius U(7.5, 12.5) px, colour U[0, 1]^3, centre offset U(-5, 5) px from the
image centre in each axis, drawn back to front over black."""
import math

import torch

EDGES = (3, 6)
RADIUS = (7.5, 12.5)
OFFSET = 5.0
OBJECTS = 2


def generate(n, seed, image_size=64, device="cpu", chunk=1000):
    """n images from a seed. The same seed gives the same images on any device.

    -> {"images": uint8 [n, N, N, 3], "amodal": bool [n, 2, N, N] back to front,
        "count": int64 [n], "colour", "radius", "centre", "edges"}
    """
    g = torch.Generator().manual_seed(seed)
    shape = (n, OBJECTS)
    params = {
        "edges": torch.randint(EDGES[0], EDGES[1] + 1, shape, generator=g),
        "radius": torch.empty(shape).uniform_(*RADIUS, generator=g),
        "centre": image_size / 2 + torch.empty(shape + (2,)).uniform_(-OFFSET, OFFSET, generator=g),
        "rotation": torch.rand(shape, generator=g) * 2 * math.pi,
        "colour": torch.rand(shape + (3,), generator=g),
    }
    amodal = torch.cat([polygon_masks(**{k: v[i:i + chunk].to(device) for k, v in params.items() if k != "colour"},
                                      image_size=image_size) for i in range(0, n, chunk)])
    images = paint(amodal, params["colour"].to(device))
    return {"images": images, "amodal": amodal, "count": torch.full((n,), OBJECTS), **params}


def polygon_masks(edges, radius, centre, rotation, image_size):
    """Pixels whose centres lie inside each regular polygon.

    edges, radius, rotation: [n, K]; centre: [n, K, 2] as (row, col) -> bool [n, K, N, N]
    """
    i = torch.arange(EDGES[1] + 1, device=radius.device)
    k = edges.unsqueeze(-1)
    # Vertices v_0..v_{k-1}, then v_0 repeated: the padding edges have zero length and test nothing.
    angle = rotation.unsqueeze(-1) + 2 * math.pi * torch.where(i < k, i, 0) / k
    vertex = centre.unsqueeze(-2) + radius[..., None, None] * torch.stack([angle.sin(), angle.cos()], -1)
    start, edge = vertex[..., :-1, :], vertex[..., 1:, :] - vertex[..., :-1, :]  # [n, K, 6, 2]
    axis = torch.arange(image_size, device=radius.device) + 0.5
    p = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)  # [N, N, 2]
    rel = p[None, None, None] - start[..., None, None, :]  # [n, K, 6, N, N, 2]
    cross = edge[..., None, None, 0] * rel[..., 1] - edge[..., None, None, 1] * rel[..., 0]
    # Vertices run one way round; a point is inside if it lies on the same side of every edge.
    return (cross >= 0).all(2) | (cross <= 0).all(2)


def paint(amodal, colour, background=None):
    """Draw flat-coloured layers back to front (index 0 farthest).

    amodal: bool [n, K, N, N], colour: [n, K, 3] in [0, 1] -> uint8 [n, N, N, 3]
    """
    n, K, N, _ = amodal.shape
    image = torch.zeros(n, N, N, 3, device=amodal.device) if background is None else background.clone()
    for k in range(K):
        image = torch.where(amodal[:, k, ..., None], colour[:, k, None, None, :], image)
    return (image * 255).round().to(torch.uint8)
