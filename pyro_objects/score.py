"""Files of any model: `pyro-objects score GT.npz PRED.npz`.

    GT.npz     amodal bool [N, K, H, W] (objects back to front, index 0 farthest), count int [N],
               optionally images uint8 [N, H, W, 3]
    PRED.npz   alpha float [N, J, H, W] (each slot's placed amodal alpha), depth float [N, J]
               (larger is farther), optionally recon float [N, H, W, 3] in [0, 1]

Each file is read and checked against the other before anything is scored; the scores
are metrics.score's.
"""
from pathlib import Path

import numpy as np

from . import data as datasets
from . import metrics
from .errors import InputError
from .files import atomic_write


def save_npz(path, arrays):
    """Write arrays to an .npz atomically (np.savez on an open file keeps the name as given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


def _check(path, name, array, ndim, kinds, what):
    if array.ndim != ndim or array.dtype.kind not in kinds:
        raise InputError(f"{path}: '{name}' must be {what}, not {array.dtype} {list(array.shape)}")


def load_truth(path):
    """A ground-truth .npz: amodal bool [N, K, H, W] back to front, count int [N], optional images uint8 [N, H, W, 3]."""
    f = datasets.read_npz(path, ("amodal", "count"), ("images",))
    _check(path, "amodal", f["amodal"], 4, "bui", "bool [N, K, H, W]")
    _check(path, "count", f["count"], 1, "ui", "int [N]")
    if f["amodal"].dtype != bool and not np.isin(f["amodal"], (0, 1)).all():
        raise InputError(f"{path}: 'amodal' must be bool [N, K, H, W] (or 0/1)")
    N, K = f["amodal"].shape[:2]
    if len(f["count"]) != N or f["count"].min(initial=0) < 0 or f["count"].max(initial=0) > K:
        raise InputError(f"{path}: 'count' must hold N = {N} numbers in 0..{K}")
    if "images" in f:
        _check(path, "images", f["images"], 4, "u", "uint8 [N, H, W, 3]")
    return {"amodal": f["amodal"].astype(bool), "count": f["count"].astype(np.int64),
            **({"images": f["images"]} if "images" in f else {})}


def load_predictions(path, truth):
    """A predictions .npz: alpha float [N, J, H, W], depth float [N, J], optional recon float [N, H, W, 3],
    checked against the ground truth's N, H and W."""
    f = datasets.read_npz(path, ("alpha", "depth"), ("recon",))
    N, _, H, W = truth["amodal"].shape
    _check(path, "alpha", f["alpha"], 4, "fbui", "float [N, J, H, W]")
    _check(path, "depth", f["depth"], 2, "fui", "float [N, J]")
    if f["alpha"].shape[0] != N or f["alpha"].shape[2:] != (H, W):
        raise InputError(f"{path}: 'alpha' is {list(f['alpha'].shape)} but the ground truth has {N} images of {H}×{W}")
    if f["depth"].shape != f["alpha"].shape[:2]:
        raise InputError(f"{path}: 'depth' is {list(f['depth'].shape)}, not [N, J] = {list(f['alpha'].shape[:2])}")
    out = {"alpha": f["alpha"].astype(np.float32), "depth": f["depth"].astype(np.float32)}
    if "recon" in f:
        if f["recon"].shape != (N, H, W, 3):
            raise InputError(f"{path}: 'recon' is {list(f['recon'].shape)}, not [N, H, W, 3] = {[N, H, W, 3]}")
        out["recon"] = f["recon"].astype(np.float32)
    return out


def score_files(truth_path, pred_path, threshold=metrics.THRESHOLD, min_overlap=metrics.MIN_OVERLAP):
    """The decomposition metrics of a predictions file against a ground-truth file -> summarise()'s dict."""
    truth = load_truth(truth_path)
    return metrics.score(truth, load_predictions(pred_path, truth), threshold, min_overlap)
