"""A dataset cache on disk: uint8 shards plus a manifest, written by `pyro-objects data make`.

    DIR/manifest.json       dataset, seed, generator version, renderer, image size, and per
                            split its image count and shards, each with its SHA-256
    DIR/train-00000.npz     images uint8 [n, N, N, 3], amodal bool [n, K, N, N] (back to
    DIR/eval-00000.npz      front), count int [n]: the ground-truth format `score` reads

Every file is written atomically and the manifest last, so a cache is whole or absent.
A shard whose checksum fails is reported by name and never used.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..files import atomic_write, sha256

VERSION = 4  # bump when a generator changes what a seed draws (2: clevr3 cameras fixed; 3: CLEVR lit as Blender
# lights it; 4: CLEVR's camera and lamps, unshrunk cubes, the fork's clevr5 sizes, framing and colours)


def write_shards(data, split, out_dir, shard_size):
    """Write a Dataset's images and ground truth in shards -> the manifest entries of the shards."""
    shards = []
    for i, start in enumerate(range(0, len(data), shard_size)):
        s = slice(start, start + shard_size)
        path = Path(out_dir) / f"{split}-{i:05d}.npz"
        arrays = {"images": data.images[s].cpu().numpy()}  # generated on a GPU, they are still there
        if data.has_truth:
            arrays.update(amodal=data.amodal[s].cpu().numpy(), count=data.count[s].cpu().numpy())

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        atomic_write(path, write)
        shards.append({"file": path.name, "images": len(arrays["images"]), "sha256": sha256(path)})
    return shards


RENDERERS = ("torch", "blender")  # data/render.py (every dataset's generator), or Blender's Cycles (CLEVR only)


def check_new(out_dir, sizes, shard_size):
    """Refuse, before any work, an out_dir that holds a cache or a run, or files the shards would replace."""
    out_dir = Path(out_dir)
    if (out_dir / "manifest.json").exists():
        held = json.loads((out_dir / "manifest.json").read_text()).get("dataset", "?") \
            if (out_dir / "manifest.json").stat().st_size else "?"
        raise InputError(f"{out_dir} already holds a dataset cache ({held!r}): choose another --out, or delete it first")
    if (out_dir / "checkpoint.pt").exists():
        raise InputError(f"{out_dir} holds a training run: choose another --out")
    for split, n in sizes.items():
        for i in range(-(-n // shard_size)):
            if (out_dir / f"{split}-{i:05d}.npz").exists():
                raise InputError(f"{out_dir / f'{split}-{i:05d}.npz'} exists and a shard would replace it: "
                                 "choose another --out")


def make(name, splits, out_dir, seed=0, shard_size=10_000, progress=None, renderer="torch", settings=None):
    """Write each (split, Dataset) of splits (one at a time, as they come) as shards, then the manifest,
    which records the renderer that drew them and its settings (Blender's: blender.settings()).
    -> the manifest dict"""
    if renderer not in RENDERERS:
        raise InputError(f"unknown renderer {renderer!r}: use one of {', '.join(RENDERERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"dataset": name, "seed": seed, "generator_version": VERSION, "renderer": renderer, "splits": {}}
    if settings:
        manifest[renderer] = settings
    for split, data in splits:
        manifest["image_size"] = data.image_size
        manifest["splits"][split] = {"images": len(data), "shards": write_shards(data, split, out_dir, shard_size)}
        if progress:
            progress(split, len(data))
    atomic_write(out_dir / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))
    return manifest


def read_manifest(cache_dir):
    path = Path(cache_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(f"{cache_dir} is not a dataset cache: it has no manifest.json (make one with pyro-objects data make)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path} is corrupt: not JSON") from None


def fingerprint(cache_dir, split="train"):
    """A digest of a cache's split as its manifest lists it (dataset, generator version, the shards'
    checksums): the same for the same images wherever the cache lies, other for other images."""
    manifest = read_manifest(cache_dir)
    shards = manifest.get("splits", {}).get(split, {}).get("shards", [])
    listed = [manifest.get("dataset"), manifest.get("generator_version"), [s.get("sha256") for s in shards]]
    return hashlib.sha256(json.dumps(listed).encode()).hexdigest()


def read(cache_dir, name, split, n=None, seed=None):
    """The first n images (all, if n is None) of a split from a cache, checked against the manifest.

    -> dict of "images", and "amodal", "count" where the cache has ground truth (torch tensors)
    """
    manifest = read_manifest(cache_dir)
    if manifest.get("dataset") != name:
        raise InputError(f"{cache_dir} holds {manifest.get('dataset')!r}, not {name!r}")
    if seed is not None and manifest.get("seed") != seed:
        raise InputError(f"{cache_dir} was made with --seed {manifest.get('seed')}, not {seed}")
    if manifest.get("generator_version") != VERSION:
        raise InputError(f"{cache_dir} was made by generator version {manifest.get('generator_version')}, "
                         f"this is {VERSION}: make it again")
    entry = manifest["splits"].get(split)
    if entry is None:
        raise InputError(f"{cache_dir} has no {split!r} split")
    n = entry["images"] if n is None else n
    if n > entry["images"]:
        raise InputError(f"{cache_dir} holds {entry['images']} {split} images, fewer than the {n} asked for")
    parts, have = [], 0
    for shard in entry["shards"]:
        if have >= n:
            break
        path = Path(cache_dir) / shard["file"]
        if not path.is_file():
            raise InputError(f"{path} is missing from the cache")
        if sha256(path) != shard["sha256"]:
            raise InputError(f"{path} fails its checksum (corrupt or changed): not used; make the cache again")
        with np.load(path) as f:
            parts.append({k: torch.from_numpy(f[k]) for k in f.files})
        have += shard["images"]
    return {k: torch.cat([p[k] for p in parts])[:n] for k in parts[0]}
