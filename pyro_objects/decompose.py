"""Decompose images into objects: condition the model on the guide's modes."""
import torch
from pyro import poutine

from .compositor import modal_segmentation


@torch.no_grad()
def decompose(model, guide, x, threshold=0.3):
    """Objects, depths, amodal masks and a modal segmentation of each image.

    x: [B, 3, N, N] in [0, 1] ->
        recon [B, 3, N, N]; rgb [B, J, 3, N, N]; alpha [B, J, N, N] (placed, amodal);
        depth [B, J] (larger is farther); theta [B, J, 2] (row, col of each object's centre);
        segmentation [B, N, N] (slot index, -1 for background); background [B, 3, N, N]

    guide None: a peer model (pyro_objects.baselines), which decomposes itself into recon and alpha
    (its modal masks) alone.
    """
    if guide is None:
        return model.decompose(x)
    modes = guide.modes(x)
    out = poutine.condition(model, data=modes)(n=x.shape[0])
    N = model.cfg.image_size
    pixel = modes["theta"].argmax(-1)
    placed, d = out["placed"], out["d"]
    return {
        "recon": out["x_mean"], "rgb": placed[:, :, :3], "alpha": placed[:, :, 3], "depth": d,
        "theta": torch.stack([pixel // N, pixel % N], -1),
        "segmentation": modal_segmentation(placed[:, :, 3], d, threshold),
        "background": out["x_bg"],
    }
