"""What an epoch's end costs a training run, beside its steps: drawing the figures and writing the
checkpoint, timed on an untrained model of each dataset's config.

    python -m pyro_objects.tools.epoch_end polygons clevr5 --repeats 5

    figures       monitor.epoch_figures: decomposition.png of 8 images and its TensorBoard copy
    checkpoint    runs.save_checkpoint of the networks and Adam's state, as training writes it

Each row is the median over repeats after one warm-up, with the range. Training draws the figures
at most once a minute (monitor.FIGURES_EVERY_S) and writes the checkpoint every epoch.
"""
import argparse
import statistics
import tempfile

import torch

from .. import data as datasets
from ..config import config_for
from ..errors import InputError
from ..guide import Guide
from ..model import Model
from ..monitor import Log, epoch_figures
from ..runs import save_checkpoint
from .bench import device_name, seconds


def times(dataset, device, repeats=5):
    """{"figures": [s, ...], "checkpoint": [s, ...]} over repeats, after one warm-up of each."""
    cfg = config_for(dataset)
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    params = [*model.parameters(), *guide.parameters()]
    adam = torch.optim.Adam(params, lr=0.0)
    for p in params:
        p.grad = torch.zeros_like(p)
    adam.step()  # Adam's state, as large as a trained run's
    data = datasets.load(dataset, "eval", 8, device=device)
    out = {}
    with tempfile.TemporaryDirectory() as run_dir:
        log = Log(run_dir, resume=False)
        work = {"figures": lambda: epoch_figures(run_dir, model, guide, data, device, 0, log),
                "checkpoint": lambda: save_checkpoint(run_dir, {"model": model.state_dict(), "guide": guide.state_dict(),
                                                                "optim": adam.state_dict()})}
        for name, job in work.items():
            job()  # the warm-up
            out[name] = [seconds(job, device) for _ in range(repeats)]
        log.close()
    return out


def table(names, device, repeats=5):
    lines = [f"{device_name(device)}, {repeats} repeats after one warm-up", "",
             "| dataset | figures, s: median (range) | checkpoint, s: median (range) |", "|---|---|---|"]
    for name in names:
        t = times(name, device, repeats)
        lines.append(f"| {name} | " + " | ".join(f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
                                                 for v in (t["figures"], t["checkpoint"])) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", default=["polygons"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        for name in args.datasets:
            config_for(name)
    except InputError as e:  # an unknown dataset: the config's own line
        parser.exit(1, f"epoch_end.py: {e}\n")
    print(table(args.datasets, args.device, args.repeats))


if __name__ == "__main__":
    main()
