"""Throughput of the CLEVR generator (clevr.generate, drawn by render.py): scenes/s per variant.

    python -m pyro_objects.tools.render_bench --variants clevr3,clevr5 --n 64 --device cpu --threads 2

Each row times `generate(n, seed)` end to end (drawing, rendering, the visibility check and its
redraws, uint8 images), after one warm-up call; it reports the median of `--repeats` calls with the
same seed, so every call draws the same scenes.
"""
import argparse

import torch

from ..data import clevr
from .bench import device_name, median_seconds


def table(variants, n, device, repeats=3, seed=0, chunks=(None,)):
    """A Markdown table: variant, device, n, scenes a render call (chunk; None: generate's default),
    scenes/s (the median of repeats calls after one warm-up)."""
    lines = ["| variant | device | n | chunk | scenes/s |", "|---|---|---|---|---|"]
    for v in variants:
        for chunk in chunks:
            seconds = median_seconds(lambda: clevr.generate(n, seed, v, device=device, chunk=chunk), device, repeats,
                                     warmup=1)
            lines.append(f"| {v} | {device_name(device)} | {n} | {chunk or 'default'} | {n / seconds:.3g} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="clevr3,clevr5", help="comma-separated, of " + ", ".join(clevr.VARIANTS))
    parser.add_argument("--n", type=int, default=64, help="scenes a call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", default="", help="comma-separated scenes a render call to compare (default: generate's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in clevr.VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}: use one of {', '.join(clevr.VARIANTS)}")
    try:
        chunks = [int(c) for c in args.chunks.split(",") if c] or [None]
    except ValueError:
        parser.error(f"--chunks takes whole numbers separated by commas, not {args.chunks!r}")
    if any(c < 1 for c in chunks if c is not None):
        parser.error("--chunks: each chunk must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(table(variants, args.n, args.device, args.repeats, chunks=chunks))


if __name__ == "__main__":
    main()
