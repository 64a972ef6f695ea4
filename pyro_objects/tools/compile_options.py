"""Inductor's tuning options against the training step: the step's rate, and what compiling costs.

    python -m pyro_objects.tools.compile_options polygons --batch 100 \\
        --option TORCHINDUCTOR_MAX_AUTOTUNE_POINTWISE=1 --option TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1

Each row is a process of its own with an empty compiler cache (a fresh TORCHINDUCTOR_CACHE_DIR), as
on a fresh machine: first the variant as it is, then each option (environment variables Inductor reads
at import), then the variant again with the first row's cache, warm. A row builds the training step
as `train` does (`train.Stage` of an untrained model, the variant's Speed) and times its first call,
which compiles the networks and records the CUDA graph (`first_step_s`), then three rounds of the
median of 30 steps after 5 (`ms`); images/s is the batch over the middle round. A row that takes
longer than --timeout seconds is stopped and reads "stopped".

With --helpers K, one more row after the first: the variant as it is with an empty cache, while K
helper processes take the same first step at the same time into the same cache, each compiling only
a share of the networks (HELPED, split K ways; the position U-Net, which the step calls first, is the row's own).
Compiling is mostly one thread of Python a process; a network a helper has finished is a cache hit
for the row. Only the row's own process is timed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyro
import torch

from .. import data as datasets
from .. import fast
from ..config import config_for
from ..errors import InputError
from ..guide import Guide
from ..model import Model
from ..train import Stage
from .bench import median_seconds, seconds, variant

HELPED = ("encode_object", "encode_background", "F_obj", "F_bg")  # a stage-1 step's networks after the U-Net


def measure(dataset, batch, name, device, only=None):
    """One row, in this process: {"first_step_s", "ms": [three rounds], "img_s", "process_s"}; with only
    (network names), a helper's: those networks compiled, the others plain."""
    start = time.perf_counter()
    cfg, speed = config_for(dataset), variant(name)
    pyro.clear_param_store()
    torch.manual_seed(0)
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    unknown = set(only or ()) - {child for child, _ in [*model.named_children(), *guide.named_children()]}
    if unknown:
        raise InputError(f"--only names no network of the model or guide: {', '.join(sorted(unknown))}")
    fast.accelerate(model, guide, speed, device, compile_only=only)
    x = datasets.load(cfg.dataset, "eval", batch, device=device).batch(torch.arange(batch), device)
    stage = Stage(1, cfg, model, guide, cfg.lr, device, speed)
    with pyro.validation_enabled(False):  # as training runs
        first = seconds(lambda: stage.step(x, 1.0, cfg.sigma[0]), device)
        if only is not None:  # a helper: its compiling is done, and its steps would slow the row's
            return {"first_step_s": first, "process_s": time.perf_counter() - start}
        rounds = [median_seconds(lambda: stage.step(x, 1.0, cfg.sigma[0]), device, 30, 5) for _ in range(3)]
    return {"first_step_s": first, "ms": [1e3 * r for r in rounds], "img_s": batch / sorted(rounds)[1],
            "process_s": time.perf_counter() - start}


def row(dataset, batch, name, device, env, cache, timeout, helpers=0):
    """measure() in a fresh process with env and the compiler's cache in `cache`, beside `helpers` helper
    processes -> the row, or None if stopped."""
    command = [sys.executable, "-m", "pyro_objects.tools.compile_options", dataset, "--batch", str(batch), "--variant", name,
               "--device", device, "--measure"]
    full = {**os.environ, **env, "TORCHINDUCTOR_CACHE_DIR": cache}
    shares = [HELPED[k::helpers] for k in range(helpers)]
    helping = [subprocess.Popen(command + ["--only", ",".join(share)], env=full, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for share in shares]
    try:
        done = subprocess.run(command, env=full, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as e:
        last = (e.stderr.strip().splitlines() or ["no message"])[-1]
        raise InputError(f"the row with {env or 'no option'} failed: {last}") from None
    finally:
        for helper in helping:  # what they have not compiled by now is of no use to the row
            helper.kill()
            helper.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def options(text):
    """'NAME=VALUE' -> {NAME: VALUE}"""
    name, sep, value = text.partition("=")
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"an option is NAME=VALUE, e.g. TORCHINDUCTOR_MAX_AUTOTUNE=1, not {text!r}")
    return {name: value}


def table(dataset, batch, name, device, extra, timeout, helpers=0):
    lines = ["| row | compiler cache | first step, s | ms a step (3 rounds) | images/s |", "|---|---|---|---|---|"]
    first_cache = tempfile.mkdtemp(prefix="inductor-")
    runs = [("as it is", {}, first_cache, "empty", 0)]  # (label, environment, cache, its state, helpers)
    if helpers:
        runs.append((f"as it is, {helpers} helper{'s' * (helpers > 1)}", {}, tempfile.mkdtemp(prefix="inductor-"),
                     "empty", helpers))
    runs += [(" ".join(f"{k}={v}" for k, v in env.items()), env, tempfile.mkdtemp(prefix="inductor-"), "empty", 0)
             for env in extra] + [("as it is", {}, first_cache, "warm (the first row's)", 0)]
    try:
        for label, env, cache, state, k in runs:
            r = row(dataset, batch, name, device, env, cache, timeout, k)
            if r is None:
                lines.append(f"| {label} | {state} | stopped after {timeout:g} s | — | — |")
            else:
                lines.append(f"| {label} | {state} | {r['first_step_s']:.1f} | "
                             + ", ".join(f"{m:.3f}" for m in r["ms"]) + f" | {r['img_s']:,.0f} |")
    finally:  # the caches are the rows' own (a GPU's hold hundreds of MB)
        for cache in {run[2] for run in runs}:
            shutil.rmtree(cache, ignore_errors=True)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", default="polygons")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--variant", default="bf16+compile+channels_last+graphs", help="as `bench --variants`")
    parser.add_argument("--option", type=options, action="append", default=[],
                        help="NAME=VALUE, an environment variable of a row; repeat for more rows")
    parser.add_argument("--timeout", type=float, default=240, help="seconds a row may take")
    parser.add_argument("--helpers", type=int, default=0, help="a row with this many helper processes compiling beside it")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--measure", action="store_true", help="one row, in this process (in the caller's cache), as JSON")
    parser.add_argument("--only", help="with --measure: a helper's row, compiling only these networks (comma-separated)")
    args = parser.parse_args()
    if args.batch < 1 or args.timeout <= 0 or not 0 <= args.helpers <= len(HELPED):
        parser.error(f"--batch must be at least 1, --timeout above 0 and --helpers from 0 to {len(HELPED)}")
    if args.only and not args.measure:
        parser.error("--only goes with --measure")
    try:
        config_for(args.dataset)
        variant(args.variant)
        if args.measure:
            only = set(args.only.split(",")) if args.only else None
            print(json.dumps(measure(args.dataset, args.batch, args.variant, args.device, only)))
        else:
            print(table(args.dataset, args.batch, args.variant, args.device, args.option, args.timeout, args.helpers))
    except InputError as e:
        parser.exit(1, f"compile_options.py: {e}\n")


if __name__ == "__main__":
    main()
