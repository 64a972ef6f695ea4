"""Where a faint alpha takes a pixel from the background: the square patches of a blend.

    python -m pyro_objects.tools.blend_patches RUN --n 64 --depths 0.9,0.5

Under the normalised blend (`depth_blend=softmax`, Eq. 9-11 as the soft rasteriser reads them) an
object at depth d outweighs the background, at the far plane d = 1, by α · exp((1 - d) / τ). With
τ = 0.05 an object at d = 0.5 takes a pixel where its alpha is as faint as 5e-5, so the faint
alpha around a shape shows its whole canvas as a square; near d = 1 it does not. The soft
back-to-front order (`depth_blend=order`) gives the background whatever the objects' alpha
leaves, at any depth.

For scenes sampled from RUN's scene prior (stage 2; without it, from the prior of stage 1), the
same scenes under do(d = v) for each v of --depths, and RUN's decompositions of held-out images,
it counts the faint pixels an object takes: those where the object's alpha is under 0.3 (outside
its shape, by the segmentation's threshold) and its blend weight over 0.5.
"""
import argparse

import torch

from .. import data as datasets
from ..compositor import BLENDS
from ..decompose import decompose
from ..errors import InputError
from ..interventions import intervene, sample
from ..runs import has_scene_prior, load_run

FAINT = 0.3  # decompose's segmentation threshold: alpha under it is outside the shape


def taken(alpha, d, blend, tau):
    """Faint pixels each image's objects take from the background.
    alpha: [B, J, N, N] (placed), d: [B, J] -> [B]"""
    w, _ = BLENDS[blend](alpha, d, tau)
    return ((alpha < FAINT) & (w > 0.5)).flatten(1).sum(1)


def rows(run, n=64, depths=(0.9, 0.5), held_out=None, seed=0):
    """[(label, depths' (min, max), median of the faint pixels taken a scene)]"""
    cfg, model, guide, state = run
    out = []

    def row(label, alpha, d):
        t = taken(alpha, d, cfg.depth_blend, cfg.depth_softness).float()
        out.append((label, (d.min().item(), d.max().item()), t.median().item()))

    torch.manual_seed(seed)
    with torch.no_grad():
        scenes, trace = sample(model, n, sigma=state["sigma"], hyperprior=has_scene_prior(state))
        row(f"{n} sampled scenes", scenes["placed"][:, :, 3], scenes["d"])
        for v in depths:
            o = intervene(model, trace, d=torch.full_like(trace.nodes["d"]["value"], v))
            row(f"the same under do(d = {v})", o["placed"][:, :, 3], o["d"])
        if held_out is not None:
            parts = decompose(model, guide, datasets.to_float(held_out.images))
            row(f"{len(held_out)} held-out images, decomposed", parts["alpha"], parts["depth"])
    return out


def table(run_dir, n=64, depths=(0.9, 0.5), held_out_n=100, device="cpu"):
    run = load_run(run_dir, device)
    cfg = run[0]
    held = datasets.load(cfg.dataset, "eval", held_out_n, device=device, cfg=cfg) if held_out_n else None
    lines = [f"{run_dir}: depth_blend={cfg.depth_blend}, τ = {cfg.depth_softness}", "",
             "| scenes | depths | faint pixels taken, median a scene |", "|---|---|---|"]
    for label, (lo, hi), median in rows(run, n, depths, held):
        lines.append(f"| {label} | {lo:.2f}-{hi:.2f} | {median:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=64, help="scenes sampled")
    parser.add_argument("--depths", default="0.9,0.5", help="depths every object is set to, comma-separated")
    parser.add_argument("--held-out", type=int, default=100, help="held-out images decomposed (0: none)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    try:
        depths = tuple(float(v) for v in args.depths.split(",") if v.strip())
    except ValueError:
        parser.error(f"--depths must be numbers separated by commas, not {args.depths!r}")
    if args.n < 1 or args.held_out < 0 or not all(0 < v < 1 for v in depths):
        parser.error("--n must be at least 1, --held-out at least 0, and every depth in (0, 1)")
    try:
        print(table(args.run_dir, args.n, depths, args.held_out, args.device))
    except InputError as e:
        parser.exit(1, f"blend_patches.py: {e}\n")


if __name__ == "__main__":
    main()
