"""Your own images: PNG or JPEG files in a folder (or matching a glob), centre-cropped
to a square and resized to N×N. No ground truth comes with them."""
import glob
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

SUFFIXES = {".png", ".jpg", ".jpeg"}


def image_files(spec):
    """The image files that `spec` (a folder or a glob) names, sorted."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in SUFFIXES]
    elif any(c in spec for c in "*?["):
        files = [Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in SUFFIXES]
    else:
        raise InputError(f"{spec} is neither a folder nor a glob of images")
    if not files:
        raise InputError(f"{spec} holds no PNG or JPEG files")
    return sorted(files)


def load_image(path, image_size):
    """uint8 [N, N, 3]: the centred square of the image, resized; None if it cannot be read."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            im = im.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def load(spec, image_size=64, split="train"):
    """uint8 [n, N, N, 3] of the split: every 10th file is held out for 'eval', the rest is 'train'.
    Files that cannot be read are skipped, with one warning that names and counts them."""
    files = image_files(spec)
    files = [f for i, f in enumerate(files) if (i % 10 == 9) == (split == "eval")]
    images, bad = [], []
    for f in files:
        image = load_image(f, image_size)
        (bad.append(f.name) if image is None else images.append(image))
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        print(f"warning: skipped {len(bad)} of {len(files)} files that are not readable images: {shown}",
              file=sys.stderr)
    if not images:
        raise InputError(f"{spec} has no readable images in its {split} split")
    return torch.from_numpy(np.stack(images))
