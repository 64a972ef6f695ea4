"""What the moving average of the weights (`--set weight_average`, train.WeightAverage) gives over
the weights as trained, read from one run: every check scores both, each with the guide's
batch-norm statistics calibrated as training calibrates them, at the same step and minute.

    python -m pyro_objects.tools.weight_average clevr3 --out RUN --seed 0 --time-budget 170s --eval-every 250

takes the options of `pyro-objects train` and writes RUN/quality.csv (the average, as training
alone writes it) and RUN/as-trained/quality.csv (the weights as trained), then prints both, check
by check, with their differences. The steps are those of the same command without the tool; only
the checks take longer (the budget counts them).
"""
import contextlib
import csv
import statistics
import sys
from pathlib import Path

import torch

from .. import train as training
from ..cli import main
from ..metrics import DECOMPOSITION
from ..report import fmt


@contextlib.contextmanager
def scoring_both():
    """Within it, each check of train.train is scored for the average, then for the weights as
    trained into RUN/as-trained/quality.csv."""
    swapped, calibrate, score = training.WeightAverage.swapped, training.calibrate, training.score_quality
    held = {}

    @contextlib.contextmanager
    def swapped_keeping_the_weights(average):
        held.update(average=average, trained=[t.clone() for t in average.weights])
        try:
            with swapped(average):
                yield
        finally:
            held.pop("average")

    def calibrate_keeping_its_arguments(*args):
        held["calibration"] = args
        return calibrate(*args)

    def score_both(run_dir, model, guide, eval_data, device, at, seconds, log):
        score(run_dir, model, guide, eval_data, device, at, seconds, log)  # the average
        if "average" not in held:  # not inside the average's context: no average kept, or stage 2
            return
        weights = held["average"].weights
        with torch.no_grad():
            averaged = [t.clone() for t in weights]
            torch._foreach_copy_(weights, held["trained"])
            calibrate(*held["calibration"])
            out = Path(run_dir) / "as-trained"
            out.mkdir(exist_ok=True)
            score(out, model, guide, eval_data, device, at, seconds, log)
            torch._foreach_copy_(weights, averaged)  # as the average's context left them

    training.WeightAverage.swapped = swapped_keeping_the_weights
    training.calibrate, training.score_quality = calibrate_keeping_its_arguments, score_both
    try:
        yield
    finally:
        training.WeightAverage.swapped, training.calibrate, training.score_quality = swapped, calibrate, score


def paired(run_dir):
    """The checks of a run trained within scoring_both, the average's beside the weights' as trained:
    a Markdown table, one row a check, and the median difference of each metric over the checks."""
    def rows(path):
        with open(path, newline="") as f:
            return {r["step"]: r for r in csv.DictReader(f)}
    averaged, trained = rows(Path(run_dir) / "quality.csv"), rows(Path(run_dir) / "as-trained" / "quality.csv")
    steps = [step for step in averaged if step in trained]
    lines = ["| step | minutes | " + " | ".join(f"{k}: average / as trained" for k in DECOMPOSITION) + " |",
             "|---|---|" + "---|" * len(DECOMPOSITION)]
    differences = {k: [] for k in DECOMPOSITION}
    for step in steps:
        cells = []
        for k in DECOMPOSITION:
            a, t = (float(r[k]) if r.get(k) else None for r in (averaged[step], trained[step]))
            cells.append(f"{fmt(a)} / {fmt(t)}")
            if a is not None and t is not None:
                differences[k].append(a - t)
        lines.append(f"| {step} | {float(averaged[step]['minutes']):.2f} | " + " | ".join(cells) + " |")
    lines.append("| median difference | | " + " | ".join(
        fmt(statistics.median(d) if d else None, "{:+.3f}") for d in differences.values()) + " |")
    return "\n".join(lines)


def _out(args):
    for k, arg in enumerate(args):
        if arg == "--out" and k + 1 < len(args):
            return args[k + 1]
        if arg.startswith("--out="):
            return arg[len("--out="):]
    return None


if __name__ == "__main__":
    with scoring_both():
        try:
            main(["train", *sys.argv[1:]], prog_name="python -m pyro_objects.tools.weight_average")
        except SystemExit as stop:
            if stop.code:
                raise
    run_dir = _out(sys.argv[1:])
    if run_dir and (Path(run_dir) / "as-trained" / "quality.csv").is_file():
        print(paired(run_dir))
