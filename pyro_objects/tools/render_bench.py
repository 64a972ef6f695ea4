"""Throughput of the CLEVR generator (clevr.generate, drawn by render.py): scenes/s per variant.

    python -m pyro_objects.tools.render_bench --variants clevr3,clevr5 --n 64 --device cpu --threads 2

Each row times `generate(n, seed)` end to end (drawing, rendering, the visibility check and its
redraws, uint8 images), after one warm-up call; it reports the median of `--repeats` calls with the
same seed, so every call draws the same scenes.

    python -m pyro_objects.tools.render_bench --variants clevr3 --n 32 --against OLD/render.py --repeats 16

--against times `render.render` of the same n scenes with this package's render.py and with
another version of the file, alternately (so a busy machine slows both alike), after checking that
both draw the same bits.
"""
import argparse
import importlib.util

import torch

from ..data import clevr, render
from .bench import device_name, median_seconds, seconds


def table(variants, n, device, repeats=3, seed=0, chunks=(None,)):
    """A Markdown table: variant, device, n, scenes a render call (chunk; None: generate's default),
    scenes/s (the median of repeats calls after one warm-up)."""
    lines = ["| variant | device | n | chunk | scenes/s |", "|---|---|---|---|---|"]
    for v in variants:
        for chunk in chunks:
            took = median_seconds(lambda: clevr.generate(n, seed, v, device=device, chunk=chunk), device, repeats,
                                  warmup=1)
            lines.append(f"| {v} | {device_name(device)} | {n} | {chunk or 'default'} | {n / took:.3g} |")
    return "\n".join(lines)


def against(path, variants, n, device, repeats=8, seed=0):
    """A Markdown table: variant, device, n, seconds a render of n scenes (median of repeats) with this
    render.py and with the one at path, alternated; raises ValueError if their outputs differ."""
    spec = importlib.util.spec_from_file_location("other_render", path)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    lines = ["| variant | device | n | this render.py, s | the other, s | other / this |", "|---|---|---|---|---|---|"]
    for v in variants:
        variant = clevr.VARIANTS[v]
        scene = clevr.draw_scenes(n, variant, torch.Generator().manual_seed(seed))
        scene = {k: x.to(device) for k, x in scene.items() if k != "ok"}
        draw = {name: (lambda m=m: m.render(scene, 96, 2, variant.zoom, variant.metal)) for name, m in
                (("this", render), ("other", other))}
        if not all(torch.equal(a, b) for a, b in zip(draw["this"](), draw["other"]())):
            raise ValueError(f"{path} draws other bits than this render.py ({v}, seed {seed})")
        times = {name: [] for name in draw}
        for _ in range(repeats):
            for name, f in draw.items():
                times[name].append(seconds(f, device))
        this, that = (sorted(times[k])[repeats // 2] for k in ("this", "other"))
        lines.append(f"| {v} | {device_name(device)} | {n} | {this:.3f} | {that:.3f} | {that / this:.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="clevr3,clevr5", help="comma-separated, of " + ", ".join(clevr.VARIANTS))
    parser.add_argument("--n", type=int, default=64, help="scenes a call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", metavar="RENDER_PY", help="another version of render.py to time beside this one")
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
    if args.against and args.chunks:
        parser.error("--against times render.render on all --n scenes at once: it takes no --chunks")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.against:
        try:
            print(against(args.against, variants, args.n, args.device, args.repeats))
        except (OSError, ValueError) as e:
            parser.exit(1, f"render_bench.py: {e}\n")
    else:
        print(table(variants, args.n, args.device, args.repeats, chunks=chunks))


if __name__ == "__main__":
    main()
