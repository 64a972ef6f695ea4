"""How sharp the relaxed θ samples that training draws are, at each temperature, for a trained guide:

    python -m pyro_objects.tools.theta_samples RUN_OR_PRETRAINED --n 200 --device cpu

For each temperature τ, one relaxed sample a slot of each of --n held-out images (as training draws θ):
the median weight of a sample's largest pixel, the mean distance in pixels from that pixel carried by the
rest, the weight more than 1.5 px from it, how often the largest pixel is not the posterior's mode and how
far from it; beside them, the step (at the run's batch) at which the run's own schedule
(`schedules.temperature`) reaches τ. A relaxed sample tends to a categorical draw as τ → 0, so the last
two columns do not fall to zero: they are the posterior's own spread.
"""
import argparse
import math

import pyro.distributions as dist
import torch

from .. import data as datasets
from ..evaluate import load_any

TEMPERATURES = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01)


def sharpness(logits, temperature, image_size):
    """logits: [B, J, N*N] of Q(θ | x) -> {peak, distance, far, off_mode, to_mode} of one relaxed sample per slot
    (torch's random state draws it)."""
    N = image_size
    sample = dist.RelaxedOneHotCategorical(torch.tensor(float(temperature)), logits=logits, validate_args=False).sample()
    peak, mode = sample.argmax(-1), logits.argmax(-1)

    def apart(p, q):  # pixels apart, of flat indices into the N×N image
        return ((p // N - q // N) ** 2 + (p % N - q % N) ** 2).float().sqrt()

    distance = apart(torch.arange(N * N), peak[..., None])  # [B, J, N*N]
    return {"peak": sample.amax(-1).median().item(), "distance": (sample * distance).sum(-1).mean().item(),
            "far": (sample * (distance > 1.5)).sum(-1).mean().item(),
            "off_mode": (peak != mode).float().mean().item(), "to_mode": apart(peak, mode).mean().item()}


def step_at(cfg, temperature):
    """The first step (at cfg.batch_size) at which cfg's θ schedule is at or below temperature, or None."""
    a, rate = cfg.sharpness
    if cfg.temperature_reading != "inverse" or temperature < cfg.min_temperature:
        return None
    images = 100 * max(math.log2(1 / (a * temperature)), 0) / rate
    return math.ceil(images / cfg.batch_size)


def table(cfg, rows):
    lines = ["| τ | reached at step | peak weight (median) | mean distance from the peak, px | weight > 1.5 px away | "
             "peak not the mode | peak to mode, px (mean) |", "|---|---|---|---|---|---|---|"]
    for t, r in rows:
        step = step_at(cfg, t)
        lines.append(f"| {t:g} | {'—' if step is None else f'{step:,}'} | {r['peak']:.3f} | {r['distance']:.3f} | "
                     f"{r['far']:.4f} | {r['off_mode']:.3f} | {r['to_mode']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    cfg, model, guide, _ = load_any(args.run, args.device)
    x = datasets.to_float(datasets.load(cfg.dataset, "eval", args.n, device=args.device, cfg=cfg).images.to(args.device))
    with torch.no_grad():
        logits = guide.theta_logits(x).float().cpu()
    torch.manual_seed(args.seed)
    print(f"{args.run}: {args.n} held-out images, posterior mode's probability median "
          f"{logits.softmax(-1).amax(-1).median():.3f}\n")
    print(table(cfg, [(t, sharpness(logits, t, cfg.image_size)) for t in TEMPERATURES]))


if __name__ == "__main__":
    main()
