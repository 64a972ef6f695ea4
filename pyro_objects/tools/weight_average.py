"""What the moving average of the weights (`--set weight_average`, train.WeightAverage) gives over
the weights as trained, read from one run: every check scores both, each with the guide's
batch-norm statistics calibrated as training calibrates them, at the same step and minute.

    python -m pyro_objects.tools.weight_average clevr3 --out RUN --seed 0 --time-budget 170s --eval-every 250

takes the options of `pyro-objects train` and writes RUN/quality.csv (the average, as training
alone writes it) and RUN/as-trained/quality.csv (the weights as trained). The steps are those of
the same command without the tool; only the checks take longer (the budget counts them).
"""
import contextlib
import sys
from pathlib import Path

import torch

from .. import train as training
from ..cli import main


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


if __name__ == "__main__":
    with scoring_both():
        main(["train", *sys.argv[1:]], prog_name="python -m pyro_objects.tools.weight_average", standalone_mode=True)
