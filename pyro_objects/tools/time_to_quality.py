"""Time to quality, read from runs' held-out checks (RUN/quality.csv, written by `train --eval-every`):
for each target, the minute and step at which each run's checks first reach it, whether every
later check of the run stays there, and the median and range of those minutes over the runs, the
way docs/PERFORMANCE.md states its goals (the median of three seeds, the quality held).

    python -m pyro_objects.tools.time_to_quality RUN [RUN ...] [--target FG-ARI=0.89] [--by 5] [--figure FILE.png]

The targets default to the paper's Table 3 numbers for the runs' dataset (`report.PAPER`); a
--target adds one, and replaces the paper's number of its metric. MSE is reached from above
(lower is better), the rest from below. A run that never reaches a target counts as slower than
any that does, so the median is "not reached" when half the runs or more do not reach it. A run
that reaches a target at its last check is not counted as holding it: nothing came after. Each
target's summary gives the median and range of the runs' best checks too. --by M reads each run
as if it had stopped at M minutes (its checks up to then): the goals' "in 5 minutes" is --by 5.
--figure draws each run's checks against the minutes, a panel a target.
"""
import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

from ..errors import InputError
from ..files import check_output
from ..metrics import SCORES  # the scores quality.csv holds
from ..report import PAPER


def read_checks(run_dir):
    """RUN/quality.csv as a list of {column: float} in the order written; a blank cell is left out."""
    path = Path(run_dir) / "quality.csv"
    if not path.is_file():
        raise InputError(f"{run_dir}: no quality.csv (train with --eval-every N to write held-out checks)")
    try:
        rows = _rows(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: not a quality.csv of train --eval-every ({type(e).__name__})") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    if not rows:
        raise InputError(f"{path}: no checks yet")
    return rows


def _rows(path):  # read_checks' reading, its bad cells one line each
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"step", "minutes"} <= set(reader.fieldnames or ()):
            raise InputError(f"{path}: not a quality.csv of train --eval-every (it has no step and minutes columns)")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({k: float(v) for k, v in row.items() if k and v not in (None, "")})
            except ValueError:
                raise InputError(f"{path}, line {line}: a value is not a number") from None
            if not {"step", "minutes"} <= set(rows[-1]):
                raise InputError(f"{path}, line {line}: no step or no minutes")
    return rows


def checks_by(run_dir, checks, minutes):
    """The checks at or before `minutes`: the run as if it had stopped then."""
    kept = [c for c in checks if c["minutes"] <= minutes]
    if not kept:
        raise InputError(f"{run_dir}: no check by {minutes:g} minutes (its first is at {checks[0]['minutes']:.2f})")
    return kept


def dataset_of(run_dir):
    """The dataset named by RUN/config.json, or None where the run has none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("dataset")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
        raise InputError(f"{path}: not a run's config (give --dataset)") from None


def reached(value, metric, target):
    return value <= target if metric == "MSE" else value >= target


def first_reach(checks, metric, target):
    """When the checks first reach target: {"minutes", "step"} (None where never); "held": "yes" where
    every later check reaches it too, "no" where one does not, "last check" where none came after,
    None where never reached; "best" and its "best_minutes"; the "last_minutes" of the checks."""
    scored = [c for c in checks if metric in c]
    if not scored:
        raise InputError(f"the checks hold no {metric}")
    best = (min if metric == "MSE" else max)(scored, key=lambda c: c[metric])
    out = {"minutes": None, "step": None, "held": None, "best": best[metric], "best_minutes": best["minutes"],
           "last_minutes": scored[-1]["minutes"]}
    for i, c in enumerate(scored):
        if reached(c[metric], metric, target):
            later = scored[i + 1:]
            out.update(minutes=c["minutes"], step=int(c["step"]),
                       held="no" if not all(reached(x[metric], metric, target) for x in later) else
                       "yes" if later else "last check")
            break
    return out


def median_minutes(reaches):
    """The median and range over runs of the minutes at which a target was first reached (a run that
    never reached it counts as infinitely slow): (median or None, [fastest, slowest reached])."""
    minutes = [r["minutes"] if r["minutes"] is not None else math.inf for r in reaches]
    m = statistics.median(minutes)
    reached_minutes = [x for x in minutes if x != math.inf]
    return (None if m == math.inf else m), ([min(reached_minutes), max(reached_minutes)] if reached_minutes else None)


def targets_for(dataset, given):
    """[(metric, value)]: the paper's Table 3 numbers for dataset (no FID), those of a metric in given
    [(metric, value)] replaced by given's."""
    targets = [(k, v) for k, v in PAPER.get(dataset, {}).items() if k in SCORES and k not in dict(given)]
    targets += given
    if not targets:
        raise InputError(f"no paper's numbers for {dataset or 'these runs'}: give targets, e.g. --target FG-ARI=0.89")
    return targets


def parse_target(text):
    metric, _, value = text.partition("=")
    if metric not in SCORES:
        raise InputError(f"--target {text!r}: the metric must be one of {', '.join(SCORES)}")
    try:
        return metric, float(value)
    except ValueError:
        raise InputError(f"--target {text!r}: give METRIC=NUMBER, e.g. mIOU=0.83") from None


def goal(metric, target):
    return f"{metric} {'≤' if metric == 'MSE' else '≥'} {target:g}"


def table(runs, targets):
    """Markdown: a row a run and target, then a row a target with the median and range over the runs."""
    lines = ["| run | target | first reached: minutes (step) | held after | best (minutes) | checks to (minutes) |",
             "|---|---|---|---|---|---|"]
    summary = []
    for metric, target in targets:
        reaches = []
        for run_dir, checks in runs:
            r = first_reach(checks, metric, target)
            reaches.append(r)
            first = f"{r['minutes']:.2f} ({r['step']:,})" if r["minutes"] is not None else "not reached"
            held = r["held"] or "—"
            best = f"{r['best']:.3g} ({r['best_minutes']:.2f})"
            lines.append(f"| {run_dir} | {goal(metric, target)} | {first} | {held} | {best} | {r['last_minutes']:.2f} |")
        median, spread = median_minutes(reaches)
        held = sum(r["held"] == "yes" for r in reaches)
        bests = [r["best"] for r in reaches]
        summary.append(f"{goal(metric, target)}: median "
                       f"{'not reached' if median is None else f'{median:.2f} min'} over {len(reaches)} run(s)"
                       + (f" (reached in {spread[0]:.2f}-{spread[1]:.2f})" if spread else "")
                       + f"; held by {held} of {len(reaches)}; best {statistics.median(bests):.3g}"
                       + (f" ({min(bests):.3g}-{max(bests):.3g})" if len(bests) > 1 else ""))
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     prog="python -m pyro_objects.tools.time_to_quality")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories with a quality.csv")
    parser.add_argument("--target", action="append", default=[], metavar="METRIC=VALUE",
                        help="a target, e.g. FG-ARI=0.89 (repeatable; default: the paper's numbers)")
    parser.add_argument("--dataset", help="whose paper's numbers (default: the runs' config.json)")
    parser.add_argument("--by", type=float, metavar="MINUTES", help="read only the checks up to this many minutes")
    parser.add_argument("--figure", metavar="FILE", help="also draw the runs' checks against the minutes (a .png)")
    args = parser.parse_args(argv)
    try:
        if args.figure:
            check_output(args.figure, "png", [Path(r) / "quality.csv" for r in args.runs])
        if args.by is not None and not args.by > 0:
            raise InputError(f"--by {args.by:g}: give the minutes, above 0")
        given = [parse_target(t) for t in args.target]
        runs = [(r, read_checks(r)) for r in args.runs]
        if args.by is not None:
            runs = [(r, checks_by(r, checks, args.by)) for r, checks in runs]
        datasets = {args.dataset} if args.dataset else {dataset_of(r) for r in args.runs}
        if len(datasets) > 1:
            raise InputError(f"the runs are of different datasets ({', '.join(sorted(map(str, datasets)))}): "
                             "compare runs of one dataset, or give --dataset")
        targets = targets_for(datasets.pop(), given)
        print(table(runs, targets))
        if args.figure:
            from ..viz import runs_quality_figure  # matplotlib only when asked
            runs_quality_figure([(Path(r).name, checks) for r, checks in runs], targets, args.figure)
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
