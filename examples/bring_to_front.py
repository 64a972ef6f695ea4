"""Reorder objects in generated scenes with pyro.poutine.do on d (Sec. 5.3).

    python examples/bring_to_front.py [RUN_DIR] [--out DIR] [--n 8] [--slot 1]

Samples scenes from a trained run (from its scene prior if it reached stage 2) or,
without RUN_DIR, from a tiny untrained model; puts every object on the image centre
so that they overlap, then reruns the scenes under do(d = the slot nearest).
Writes DIR/front-before.png (overlapping, depths as sampled) and DIR/front-after.png.
"""
import argparse
from pathlib import Path

import torch

from pyro_objects.interventions import intervene, nearest, one_hot_at, sample
from pyro_objects.viz import samples_figure

from place_objects import load


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--out", default="figures/examples")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--slot", type=int, default=1)
    args = parser.parse_args()
    model, hyperprior = load(args.run_dir)
    cfg = model.cfg
    torch.manual_seed(0)
    _, trace = sample(model, args.n, hyperprior=hyperprior)
    centre = [(j, cfg.image_size // 2, cfg.image_size // 2 + 2 * j) for j in range(cfg.slots)]  # overlapping
    theta = one_hot_at(trace.nodes["theta"]["value"], centre, cfg.image_size)
    before = intervene(model, trace, theta=theta)
    after = intervene(model, trace, theta=theta, d=nearest(trace.nodes["d"]["value"], args.slot, cfg.depth_softness))
    out = Path(args.out)
    samples_figure(before, out / "front-before.png")
    samples_figure(after, out / "front-after.png")
    print(f"{out / 'front-before.png'}, {out / 'front-after.png'}")


if __name__ == "__main__":
    main()
