"""Our CLEVR renderer (data/render.py) against Blender's Cycles (data/blender.py) on the same scenes.

    python examples/compare_renderers.py clevr3 [--n 50] [--fid 500] [--seed 0] [--samples 32]
        [--threads 2] [--out DIR] [--cache DIR]

Draws n scenes of a seed (clevr.generate's, with their parameters), renders each with both, and
prints the per-pixel MSE between the images (floats in [0, 1]; on all pixels, on the ground and on
objects), and the IoU of each object's two amodal masks (mean, lowest, by shape). With --fid M,
also the FID and KID×100 between M images of each renderer (the same M scenes), beside the FID
between two different sets of M of ours (how far apart two samples of one renderer are).
Writes DIR/compare-VARIANT.png: eight scenes, ours above Blender's, their difference below.
Blender's renders are kept in --cache (keyed by the scenes' parameters), for the next run.
"""
import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from pyro_objects.data import blender, clevr
from pyro_objects.fid import fid_kid


def blender_images(scenes, variant, args):
    """Blender's render of the scenes (images, amodal), from the cache where it holds these scenes."""
    key = hashlib.sha256(b"".join(scenes[k].numpy().tobytes() for k in
                                  ("centre", "size", "shape", "angle", "camera", "light_position", "ground"))).hexdigest()
    path = Path(args.cache) / f"{variant}-{len(scenes['count'])}-{args.samples}-{key[:16]}.npz"
    if path.is_file():
        with np.load(path) as f:
            return torch.from_numpy(f["images"]), torch.from_numpy(f["amodal"])
    start = time.time()
    images, amodal, _ = blender.render(scenes, scenes["images"].shape[1], variant, args.samples,
                                       threads=args.threads, progress=True)
    print(f"blender: {(time.time() - start) / len(images):.2f} s a scene ({args.threads or 'all'} threads, "
          f"{args.samples} samples)")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images.numpy(), amodal=amodal.numpy())
    return images, amodal


def gaps(scenes, images, amodal):
    """Per-pixel MSE between the renderers' images, and the IoU of each present object's masks."""
    a, b = scenes["images"].float() / 255, images.float() / 255
    error = ((a - b) ** 2).mean(-1)  # [n, N, N]
    objects = scenes["amodal"].any(1) | amodal.any(1)
    present = scenes["present"]
    iou = ((amodal & scenes["amodal"]).sum((2, 3)) / (amodal | scenes["amodal"]).sum((2, 3)).clamp(min=1))[present]
    return {"mse": error.mean().item(), "mse_ground": error[~objects].mean().item(),
            "mse_objects": error[objects].mean().item(), "iou": iou.float(), "shape": scenes["shape"][present]}


def figure(scenes, images, path, k=8):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    k = min(k, len(images))
    ours, theirs = scenes["images"][:k], images[:k]
    diff = ((ours.float() - theirs.float()).abs().mean(-1) * 2).clamp(max=255).to(torch.uint8)
    fig, axes = plt.subplots(3, k, figsize=(1.6 * k, 5.1))
    for j in range(k):
        for row, (image, name) in enumerate(((ours[j], "ours"), (theirs[j], "Blender"), (diff[j], "|difference| ×2"))):
            ax = axes[row, j]
            ax.imshow(image.numpy(), cmap="magma" if row == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=sorted(clevr.VARIANTS))
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--fid", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=blender.SAMPLES)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="figures/compare")
    parser.add_argument("--cache", default="figures/compare/blender-cache")
    args = parser.parse_args()
    scenes = clevr.generate(max(args.n, args.fid), args.seed, args.variant, params=True)
    images, amodal = blender_images(scenes, args.variant, args)
    first = {k: v[:args.n] for k, v in scenes.items()}
    g = gaps(first, images[:args.n], amodal[:args.n])
    iou = g["iou"]
    print(f"{args.variant}, {args.n} scenes (seed {args.seed}): per-pixel MSE {g['mse']:.2e} "
          f"(ground {g['mse_ground']:.2e}, objects {g['mse_objects']:.2e})")
    print(f"amodal IoU per object: mean {iou.mean():.3f}, lowest {iou.min():.3f}, "
          f"{(iou >= 0.9).float().mean():.0%} at 0.9 or more; " +
          ", ".join(f"{name} {iou[g['shape'] == s].mean():.3f} (n={int((g['shape'] == s).sum())})"
                    for s, name in enumerate(clevr.SHAPES)))
    if args.fid:
        other = clevr.generate(args.fid, args.seed + 1, args.variant)["images"]
        between = fid_kid(scenes["images"][:args.fid], images[:args.fid])
        within = fid_kid(scenes["images"][:args.fid], other)
        print(f"FID ours vs Blender, {args.fid} each: {between['FID']:.1f} (KID×100 {between['KIDx100']:.2f}); "
              f"ours vs ours (seeds {args.seed}, {args.seed + 1}): {within['FID']:.1f} (KID×100 {within['KIDx100']:.2f})")
    path = Path(args.out) / f"compare-{args.variant}.png"
    figure(scenes, images, path)
    print(path)


if __name__ == "__main__":
    main()
