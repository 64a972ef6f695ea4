"""Move objects in generated scenes with pyro.poutine.do on θ (Sec. 5.3).

    python examples/place_objects.py [RUN_DIR] [--out DIR] [--n 8]

Samples scenes from a trained run (from its scene prior if it reached stage 2) or,
without RUN_DIR, from a tiny untrained model; then reruns them under
do(θ_0 = one-hot at the top-left quarter, θ_1 = one-hot at the bottom-right),
every other latent as it was. Writes DIR/place-before.png and DIR/place-after.png.
"""
import argparse
from pathlib import Path

import torch

from pyro_objects.config import POLYGONS, quick
from pyro_objects.interventions import place_objects, sample
from pyro_objects.model import Model
from pyro_objects.runs import has_scene_prior, load_run
from pyro_objects.viz import samples_figure


def load(run_dir):
    """(model, whether it has a trained scene prior): a run's, or a tiny untrained one."""
    if run_dir is None:
        return Model(quick(POLYGONS)).eval(), False
    _, model, _, state = load_run(run_dir)
    return model, has_scene_prior(state)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--out", default="figures/examples")
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args()
    model, hyperprior = load(args.run_dir)
    torch.manual_seed(0)
    before, trace = sample(model, args.n, hyperprior=hyperprior)
    N = model.cfg.image_size
    after = place_objects(model, trace, [(0, N // 4, N // 4), (1, 3 * N // 4, 3 * N // 4)])
    out = Path(args.out)
    samples_figure(before, out / "place-before.png")
    samples_figure(after, out / "place-after.png")
    print(f"{out / 'place-before.png'}, {out / 'place-after.png'}")


if __name__ == "__main__":
    main()
