"""Where the eager Pyro step's time goes beyond the plain PyTorch step: one step taken six ways,
interleaved round by round in one process, so that a busy host or a warming GPU slows all alike.

    python -m pyro_objects.tools.pyro_overhead polygons --batch 100 --rounds 6 --steps 20

    plain                         bench.plain_training_step: the loss as one function, one torch Adam
    plain + float(loss)           the same, reading the loss on the host each step (SVI.step returns a float)
    ELBO, pyro.module a no-op     ObjectsELBO.loss_and_grads (what SVI.step calls), the same torch Adam, with
                                  pyro.module made to register nothing: Pyro's handlers, traces and sites alone
    ELBO, parameters registered   the same with pyro.module registering the parameters each step, as training does
    the same + NaN read           the same + Trace_ELBO's per-step NaN warning, a host read between the backward
                                  pass and the update (ObjectsELBO warns only while Pyro validates)
    SVI.step                      the training step (train.Stage, eager: no CUDA graph)

Each row is the median over rounds of the mean step time in a round, with the range, and its ratio
to the plain step. Eager fp32 only: a CUDA graph records the Pyro program once and replays its
kernels, so the graphed steps pay none of this.

    python -m pyro_objects.tools.pyro_overhead polygons --host --batch 1 --device cpu

counts instead what the Pyro step does on the host: the aten operators that the plain loss and the
ELBO dispatch in a forward and backward pass, and, under cProfile, the milliseconds a `SVI.step`
spends in Pyro's own Python and in `pyro.module` (cProfile slows Python, so read these as shares).

    python -m pyro_objects.tools.pyro_overhead polygons --calls --batch 2 --device cpu

counts the Python function calls of one step (generator resumptions included), a measure of host
work that does not vary from run to run: the plain step's, and a `SVI.step`'s with the GPU's
optimiser (`fast.FusedAdam`) split by where they happen.

    python -m pyro_objects.tools.pyro_overhead polygons --syncs

counts the host syncs of one `SVI.step` and of one plain step (CUDA only: PyTorch's sync debug
mode warns at each), with the Python lines that caused them.
"""
import argparse
import collections
import cProfile
import pstats
import statistics
import sys
import traceback
import warnings

import pyro
import torch
from pyro.util import warn_if_nan
from torch.utils._python_dispatch import TorchDispatchMode

from .. import data as datasets
from .. import fast
from ..config import Speed, config_for
from ..errors import InputError
from ..guide import Guide
from ..model import Model
from ..train import Stage
from .bench import device_name, plain_loss, plain_training_step, seconds


def eager_stage(cfg, B, device):
    """(model, guide, x, stage): fresh networks, B held-out images and stage 1's eager SVI."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    model, guide = fast.accelerate(Model(cfg).to(device), Guide(cfg).to(device), Speed(cuda_graphs=False), device)
    x = datasets.load(cfg.dataset, "eval", B, device=device).batch(torch.arange(B), device)
    return model, guide, x, Stage(1, cfg, model, guide, cfg.lr, device, Speed(cuda_graphs=False))


def steps(cfg, B, device):
    """{name: a function taking one step} of the six kinds above, on B held-out images."""
    model, guide, x, stage = eager_stage(cfg, B, device)
    temperature, sigma = 1.0, cfg.sigma[0]
    elbo = stage.elbo
    params = [p for m in (model, guide) for p in m.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=cfg.lr, fused=str(device).startswith("cuda") or None)

    def plain_read():
        adam.zero_grad(set_to_none=True)
        loss = plain_loss(model, guide, x, temperature, sigma, elbo)
        loss.backward()
        adam.step()
        float(loss.detach())

    def elbo_step(register, nan_read=False):
        def step():
            adam.zero_grad(set_to_none=True)
            module = pyro.module
            if not register:
                pyro.module = lambda name, nn_module, update_module_params=False: nn_module
            try:
                # loss_and_grads, not differentiable_loss: Trace_ELBO's differentiable_loss reads the loss on
                # the host between the forward and the backward pass, a wait that SVI.step does not have
                loss = elbo.loss_and_grads(model, guide, x, temperature=temperature, sigma=sigma)
            finally:
                pyro.module = module
            if nan_read:
                warn_if_nan(loss, "loss")
            adam.step()
        return step

    return {
        "plain": plain_training_step(model, guide, x, temperature, sigma, elbo),
        "plain + float(loss)": plain_read,
        "ELBO, pyro.module a no-op": elbo_step(False),
        "ELBO, parameters registered": elbo_step(True),
        "the same + NaN read": elbo_step(True, nan_read=True),
        "SVI.step": lambda: stage.step(x, temperature, sigma),
    }


def table(dataset, B, device, rounds=6, per_round=20, warmup=5):
    """A Markdown table: each kind's ms a step (median over rounds, and range) and its ratio to plain."""
    kinds = steps(config_for(dataset), B, device)
    times = {k: [] for k in kinds}
    with pyro.validation_enabled(False):  # as training runs
        for step in kinds.values():
            for _ in range(warmup):
                step()
        for _ in range(rounds):
            for name, step in kinds.items():
                times[name].append(seconds(lambda: [step() for _ in range(per_round)], device) / per_round * 1e3)
    plain = statistics.median(times["plain"])
    lines = [f"{dataset}, batch {B}, {device_name(device)}, eager fp32, {rounds} rounds of {per_round} steps, interleaved",
             "", "| step | ms, median (range) of rounds | / plain |", "|---|---|---|"]
    for name, t in times.items():
        m = statistics.median(t)
        lines.append(f"| {name} | {m:.2f} ({min(t):.2f}-{max(t):.2f}) | {m / plain:.3f} |")
    return "\n".join(lines)


class Operators(TorchDispatchMode):
    """Counts the aten operators dispatched inside it: views and kernels alike."""

    def __init__(self):
        super().__init__()
        self.count = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def host_table(dataset, B, device, profiled_steps=20):
    """A Markdown table of the host work above: operators a pass, and Pyro's Python under cProfile."""
    cfg = config_for(dataset)
    model, guide, x, stage = eager_stage(cfg, B, device)
    temperature, sigma = 1.0, cfg.sigma[0]
    passes = {"plain loss, forward and backward": lambda: plain_loss(model, guide, x, temperature, sigma, stage.elbo).backward(),
              "ObjectsELBO.loss_and_grads": lambda: stage.elbo.loss_and_grads(model, guide, x, temperature=temperature,
                                                                              sigma=sigma)}
    counts = {}
    with pyro.validation_enabled(False):
        for name, run in passes.items():
            run()  # the warm-up
            with Operators() as ops:
                run()
            counts[name] = ops.count
        for _ in range(3):
            stage.step(x, temperature, sigma)
        with cProfile.Profile() as profile:
            for _ in range(profiled_steps):
                stage.step(x, temperature, sigma)
    stats = pstats.Stats(profile).stats  # {(file, line, function): (calls, calls, own s, cumulative s, callers)}
    per_step = 1e3 / profiled_steps
    pyro_own = sum(v[2] for k, v in stats.items() if "/pyro/" in k[0]) * per_step
    module = sum(v[3] for k, v in stats.items() if k[0].endswith("pyro/primitives.py") and k[2] == "module") * per_step
    step = sum(v[3] for k, v in stats.items() if k[0].endswith("pyro/infer/svi.py") and k[2] == "step") * per_step
    return "\n".join([
        f"{dataset}, batch {B}, {device_name(device)}, eager fp32, {profiled_steps} steps profiled", "",
        "| pass | aten operators | of them views and metadata |", "|---|---|---|",
        *(f"| {name} | {sum(c.values()):,} | {sum(n for op, n in c.items() if op in VIEWS):,} |" for name, c in counts.items()),
        "", "| under cProfile, ms a step | SVI.step | Pyro's own Python | pyro.module (cumulative) |", "|---|---|---|---|",
        f"| {dataset} | {step:.2f} | {pyro_own:.2f} | {module:.2f} |"])


PARTS = {  # (file, function): the part of a step whose Python calls it and its callees make
    ("pyro/primitives.py", "module"): "pyro.module, registering the parameters",
    ("fast/optim.py", "__call__"): "FusedAdam's own, around Adam's step",
    ("torch/optim/adam.py", "step"): "torch Adam's step",
}


def plain_and_svi_step(dataset, B, device):
    """{"plain": ..., "SVI.step": ...}: the plain step and stage 1's eager SVI.step with the GPU's optimiser
    (fast.FusedAdam, on any device), on B held-out images; each a function taking one step."""
    cfg = config_for(dataset)
    model, guide, x, stage = eager_stage(cfg, B, device)
    stage.svi.optim = fast.FusedAdam({"lr": cfg.lr})
    temperature, sigma = 1.0, cfg.sigma[0]
    return {"plain": plain_training_step(model, guide, x, temperature, sigma, stage.elbo),
            "SVI.step": lambda: stage.svi.step(x, temperature=temperature, sigma=sigma)}


def call_table(dataset, B, device):
    """A Markdown table of the Python calls in one step, the plain step's and SVI.step's (with the GPU's
    optimiser, fast.FusedAdam), each split by the part of the step they happen in."""
    kinds = plain_and_svi_step(dataset, B, device)
    rest = "the rest: networks, loss (the ELBO's traces and sites), backward, SVI's own"
    counts = {}
    with pyro.validation_enabled(False):
        for name, step in kinds.items():
            for _ in range(3):
                step()
            count, inside = collections.Counter(), []

            def profile(frame, event, arg):
                if event not in ("call", "return"):  # calls of C functions: not counted
                    return
                code = frame.f_code
                part = next((p for (f, fn), p in PARTS.items()
                             if code.co_name == fn and code.co_filename.endswith(f)), None)
                if event == "call":
                    count[inside[-1] if inside else rest] += 1
                    if part:
                        inside.append(part)
                elif event == "return" and part and inside:
                    inside.pop()

            sys.setprofile(profile)
            try:
                step()
            finally:
                sys.setprofile(None)
            counts[name] = count
    plain, svi = counts["plain"], counts["SVI.step"]
    lines = [f"{dataset}, batch {B}, {device_name(device)}, eager fp32, one step after 3, generator resumptions counted",
             "", "| part of the step | plain | SVI.step | SVI.step − plain |", "|---|---|---|---|"]
    for part in [*PARTS.values(), rest]:
        lines.append(f"| {part} | {plain[part]:,} | {svi[part]:,} | {svi[part] - plain[part]:+,} |")
    total = sum(plain.values()), sum(svi.values())
    lines.append(f"| **all** | {total[0]:,} | {total[1]:,} | {total[1] - total[0]:+,} |")
    return "\n".join(lines)


def sync_table(dataset, B, device):
    """A Markdown table of the host syncs in one eager SVI.step and one plain step, and where each comes from."""
    if not str(device).startswith("cuda"):
        raise InputError("counting host syncs needs a CUDA device (PyTorch's sync debug mode is CUDA's)")
    kinds = plain_and_svi_step(dataset, B, device)
    lines = [f"{dataset}, batch {B}, {device_name(device)}, eager fp32, one step after 3", "",
             "| step | host syncs | from (innermost frames outside torch) |", "|---|---|---|"]
    with pyro.validation_enabled(False):
        for name, step in kinds.items():
            for _ in range(3):
                step()
            torch.cuda.synchronize(device)
            where = collections.Counter()

            def seen(message, category, filename, lineno, file=None, line=None):
                if "called a synchronizing" not in str(message):  # e.g. the debug mode's own notice
                    return
                frames = [f for f in traceback.extract_stack()[:-1]
                          if "/torch/" not in f.filename and "warnings" not in f.filename]
                where[" < ".join(f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                                 for f in reversed(frames[-3:]))] += 1

            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = seen
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    step()
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            lines.append(f"| {name} | {sum(where.values())} | {'; '.join(f'{n}× {w}' for w, n in where.items()) or '—'} |")
    return "\n".join(lines)


VIEWS = {"view", "expand", "detach", "unsqueeze", "squeeze", "slice", "select", "_unsafe_view", "permute", "t",
         "transpose", "reshape", "alias", "as_strided", "lift_fresh", "unbind", "split", "split_with_sizes"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", default="polygons")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="steps of each kind a round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--host", action="store_true", help="count operators and profile Pyro's host work instead")
    parser.add_argument("--calls", action="store_true", help="count the Python calls of one step instead")
    parser.add_argument("--syncs", action="store_true", help="count the host syncs of one step instead (CUDA)")
    args = parser.parse_args()
    if min(args.batch, args.rounds, args.steps) < 1 or args.warmup < 0:
        parser.error("--batch, --rounds and --steps must be at least 1, --warmup at least 0")
    try:
        config_for(args.dataset)
    except InputError as e:  # an unknown dataset: the config's own line
        parser.exit(1, f"pyro_overhead.py: {e}\n")
    if args.syncs:
        try:
            print(sync_table(args.dataset, args.batch, args.device))
        except InputError as e:
            parser.exit(1, f"pyro_overhead.py: {e}\n")
    elif args.calls:
        print(call_table(args.dataset, args.batch, args.device))
    elif args.host:
        print(host_table(args.dataset, args.batch, args.device, args.steps))
    else:
        print(table(args.dataset, args.batch, args.device, args.rounds, args.steps, args.warmup))


if __name__ == "__main__":
    main()
