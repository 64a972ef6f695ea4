"""Datasets: images with, where known, their ground truth.

Every dataset is a `Dataset`: uint8 images [n, N, N, 3] and, for synthetic
ones, `amodal` bool [n, K, N, N] (each object whole, hidden parts included,
listed back to front: index 0 is farthest) and `count` [n] (objects present;
slots past it are empty). The same layout is the ground-truth file format
that `pyro-objects score` reads.
"""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import CONFIGS
from ..errors import InputError
from . import clevr, dsprites, folder, polygons, shards

GENERATORS = {"polygons": polygons.generate, "multi-dsprites": dsprites.generate, **clevr.generators()}
SPLITS = ("train", "eval")
RESIDENT_SHARE = 0.25  # the most of a GPU's free memory that training images may take there


@dataclass
class Dataset:
    name: str
    images: torch.Tensor                    # uint8 [n, N, N, 3]
    amodal: Optional[torch.Tensor] = None   # bool [n, K, N, N], back to front
    count: Optional[torch.Tensor] = None    # int [n]

    def __len__(self):
        return self.images.shape[0]

    @property
    def image_size(self):
        return self.images.shape[1]

    @property
    def has_truth(self):
        return self.amodal is not None

    def batch(self, index, device=None):
        """Images as floats in [0, 1]: [B, 3, N, N]."""
        return to_float(self.images[index].to(device))


def resident(data, device, free_bytes=None):
    """The dataset with its images on device, where they take at most RESIDENT_SHARE of its free memory
    (free_bytes; default: what CUDA reports), so that each training batch is gathered there; otherwise
    as it is, each batch then gathered on the host and copied over. CLEVR's generator and dataset caches
    leave the images on the host, where a batch of 100 clevr images costs milliseconds a step."""
    device = torch.device(device)
    if device.type == "cpu" or data.images.device.type == device.type:
        return data
    if free_bytes is None and device.type == "cuda":
        free_bytes = torch.cuda.mem_get_info(device)[0]
    if free_bytes is None or data.images.nbytes > RESIDENT_SHARE * free_bytes:
        return data
    return replace(data, images=data.images.to(device))


def read_npz(path, required, optional=()):
    """The named arrays of an .npz file, or an InputError that says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        with np.load(path) as f:
            missing = [k for k in required if k not in f]
            if missing:
                raise InputError(f"{path} has no array named {', '.join(repr(k) for k in missing)}")
            return {k: f[k] for k in (*required, *optional) if k in f}
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path} cannot be read as .npz ({type(e).__name__})") from None


def to_float(images):
    """uint8 [B, N, N, 3] -> float [B, 3, N, N] in [0, 1]"""
    return images.permute(0, 3, 1, 2).float() / 255


def split_seed(seed, split):
    """Train and eval draw from disjoint seeds, so their images never coincide."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return 2 * seed + SPLITS.index(split)


def load(name, split="train", n=None, seed=0, device="cpu", cfg=None, cache=None):
    """A dataset by name: 'polygons', 'multi-dsprites', 'clevr3', 'clevr5', 'clevr5-vbg', or 'folder:PATH' (a folder or
    glob of your own images); n images of the split (default: the config's size; all, for a folder).
    With cache, a directory made by `pyro-objects data make`, the images come from its checked shards
    instead of the generator."""
    if cache:
        data = shards.read(cache, name, split, n, seed)
        return Dataset(name, data["images"], data.get("amodal"), data.get("count"))
    if name.startswith("folder:"):
        split_seed(seed, split)  # checks the split's name
        images = folder.load(name[len("folder:"):], cfg.image_size if cfg else 64, split)
        return Dataset(name, images[:n] if n else images)
    if name not in GENERATORS:
        raise InputError(f"unknown dataset {name!r}: choose from {', '.join(sorted(GENERATORS))}")
    if n is None:
        cfg = cfg or CONFIGS[name]
        n = cfg.n_train if split == "train" else cfg.n_eval
    data = GENERATORS[name](n, split_seed(seed, split), device=device)
    return Dataset(name, data["images"], data["amodal"], data["count"])
