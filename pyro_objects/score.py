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


def _check_values(path, name, array, low, high, out_of_range_ok=False):
    """Every value finite, and in [low, high] unless out_of_range_ok."""
    if array.dtype.kind == "f":
        bad = int((~np.isfinite(array)).sum())
        if bad:
            raise InputError(f"{path}: '{name}' holds {bad} values that are NaN or infinite")
    if not out_of_range_ok and array.size and (array.min() < low or array.max() > high):
        raise InputError(f"{path}: '{name}' holds values in [{array.min():.4g}, {array.max():.4g}], outside "
                         f"[{low:g}, {high:g}]" + (" (is it in 0-255?)" if name == "recon" and array.max() > 1 else "")
                         + "; --allow-out-of-range scores them as they are")


def load_truth(path):
    """A ground-truth .npz: amodal bool [N, K, H, W] back to front, count int [N], optional images uint8 [N, H, W, 3]."""
    f = datasets.read_npz(path, ("amodal", "count"), ("images",))
    _check(path, "amodal", f["amodal"], 4, "bui", "bool [N, K, H, W]")
    _check(path, "count", f["count"], 1, "ui", "int [N]")
    if f["amodal"].dtype != bool and not np.isin(f["amodal"], (0, 1)).all():
        raise InputError(f"{path}: 'amodal' must be bool [N, K, H, W] (or 0/1)")
    N, K, H, W = f["amodal"].shape
    if N == 0:
        raise InputError(f"{path} holds no images: 'amodal' is {list(f['amodal'].shape)}")
    if len(f["count"]) != N or f["count"].min(initial=0) < 0 or f["count"].max(initial=0) > K:
        raise InputError(f"{path}: 'count' must hold N = {N} numbers in 0..{K}")
    if "images" in f:
        _check(path, "images", f["images"], 4, "u", "uint8 [N, H, W, 3]")
        if f["images"].shape != (N, H, W, 3):
            raise InputError(f"{path}: 'images' is {list(f['images'].shape)} but 'amodal' has {N} images of {H}×{W}: "
                             f"it must be {[N, H, W, 3]}")
    return {"amodal": f["amodal"].astype(bool), "count": f["count"].astype(np.int64),
            **({"images": f["images"]} if "images" in f else {})}


def load_predictions(path, truth, out_of_range_ok=False):
    """A predictions .npz: alpha float [N, J, H, W] in [0, 1], optionally depth float [N, J] (a model without
    depth gets no aIOU or DPA) and recon float [N, H, W, 3] in [0, 1], checked against the ground truth's N, H, W."""
    f = datasets.read_npz(path, ("alpha",), ("depth", "recon"))
    N, _, H, W = truth["amodal"].shape
    _check(path, "alpha", f["alpha"], 4, "fbui", "float [N, J, H, W]")
    if f["alpha"].shape[0] != N or f["alpha"].shape[2:] != (H, W):
        raise InputError(f"{path}: 'alpha' is {list(f['alpha'].shape)} but the ground truth has {N} images of {H}×{W}")
    _check_values(path, "alpha", f["alpha"], 0, 1, out_of_range_ok)
    out = {"alpha": f["alpha"].astype(np.float32)}
    if "depth" in f:
        _check(path, "depth", f["depth"], 2, "fui", "float [N, J]")
        if f["depth"].shape != f["alpha"].shape[:2]:
            raise InputError(f"{path}: 'depth' is {list(f['depth'].shape)}, not [N, J] = {list(f['alpha'].shape[:2])}")
        _check_values(path, "depth", f["depth"], -np.inf, np.inf)
        out["depth"] = f["depth"].astype(np.float32)
    if "recon" in f:
        if f["recon"].shape != (N, H, W, 3):
            raise InputError(f"{path}: 'recon' is {list(f['recon'].shape)}, not [N, H, W, 3] = {[N, H, W, 3]}")
        _check_values(path, "recon", f["recon"], 0, 1, out_of_range_ok)
        out["recon"] = f["recon"].astype(np.float32)
    return out


def score_files(truth_path, pred_path, threshold=metrics.THRESHOLD, min_overlap=metrics.MIN_OVERLAP,
                out_of_range_ok=False):
    """The decomposition metrics of a predictions file against a ground-truth file -> metrics.score's dict."""
    truth = load_truth(truth_path)
    return metrics.score(truth, load_predictions(pred_path, truth, out_of_range_ok), threshold, min_overlap)
