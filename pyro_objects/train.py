"""Training by stochastic variational inference (Sec. 4, App. B), resumable to the step.

    for each epoch:
        for each batch of the epoch's fixed shuffle:
            stage 1: svi.step(x, temperature=τ(images), sigma=σ(epoch))   the ELBO of Sec. 4 (elbo.py)
                     average.update(step)                              the weights' moving average (ours)
            stage 2: svi.step(n, θ, z, d) at the guide's modes of x       the scene prior alone
        the learning rate (and the batch) change on schedule; checkpoint and figures (at most once a minute)

Before each checkpoint and check of stage 1, the guide's batch-norm statistics are set from
decompositions of the first training images (`calibrate`; not in `paper-training`): training
keeps the statistics of what it feeds the object encoder, a relaxed θ sample, while a
decomposition feeds it θ's one-hot mode.

Stage 1 trains the decoders and the guide with the fixed priors (no y). Stage 2, the
last `cfg.hyperprior_epochs` epochs, freezes them and fits ζ, ξ and Q(y | z, θ, d) on
the guide's posterior modes. Each step is `SVI.step` with a Pyro optimiser; on a GPU
the acceleration layer (pyro_objects/fast) takes the same steps faster. The checkpoint
holds everything the next step depends on (runs.py), so a run stopped by its time
budget and resumed ends where an uninterrupted run would.

With cfg.weight_average, a moving average of stage 1's weights is kept beside them
(`WeightAverage`): checks, figures and the checkpoint's saved model read it, and stage 2 starts from it.
"""
import contextlib
import dataclasses
import math
import sys
import time

import pyro
import torch
from pyro.infer import SVI
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from . import data as datasets
from . import fast
from . import schedules
from .config import Speed
from .elbo import from_config, scene_prior_elbo
from .errors import InputError, TrainingError
from .guide import Guide
from .model import Model
from .monitor import Log, epoch_figures, score_quality
from .runs import load_checkpoint, lock, record_command, save_checkpoint, save_config

WARM_UP_STEPS = 3  # a call's first steps (compilation, graph capture), left out of the step time the budget plans with
MAX_RESTORES = 3  # non-finite losses between two checkpoints, each answered by the last one at half the rate
CHECKPOINT_EVERY_S = 60  # at an epoch's end, a checkpoint at most once a minute of training, besides a call's
# first epoch, stage 1's last and the run's last: on a GPU an epoch ends every few seconds, and each checkpoint
# (two calibrations, the file, compiled.bin) took 0.7 s of them (docs/PERFORMANCE.md)


def train(run, device="cpu", speed=Speed(), time_budget=None, max_steps=None, data=None, eval_every=None,
          eval_data=None, log_every=25, figures=True, progress=True):
    """Train a run (runs.start or runs.resume) to its last epoch, to time_budget seconds or to
    max_steps (counted from the run's start), whichever comes first -> the final checkpoint's state.

    data: a Dataset to train on (default: the config's dataset, generated, or read from the run's cache).
    eval_every: every this many steps, score the decomposition of eval_data (default: 500 held-out
    images) into RUN/quality.csv against the minutes trained: time to quality.
    """
    clock = Clock(run.state, time_budget)  # the budget counts from here: data and compilation included
    cfg, lead = run.cfg, fast.rank() == 0  # only the first process writes the checkpoint, log and figures
    if cfg.batch_size % fast.world_size():
        raise InputError(f"batch size {cfg.batch_size} does not split evenly over {fast.world_size()} processes")
    # no argument checks while training: each is a host read a step
    with lock(run.dir) if lead else contextlib.nullcontext(), pyro.validation_enabled(False):
        model, guide, at = _networks(run, device, speed)
        data = datasets.resident(data or datasets.load(cfg.dataset, "train", cfg.n_train, run.seed, device, cfg, run.cache),
                                 device)  # batches gathered on the GPU, where the images fit
        steps_per_epoch = [steps_in_epoch(cfg, data, e) for e in range(cfg.epochs)]
        if lead:  # written once the run can start, so that a refused one leaves nothing behind
            run.dir.mkdir(parents=True, exist_ok=True)
            save_config(run.dir, cfg)
            if run.command:
                record_command(run.dir, run.command)
        if eval_every and lead and eval_data is None:
            eval_data = datasets.load(cfg.dataset, "eval", 500, device=device, cfg=cfg, cache=run.cache)
        stage = Stage(at["stage"], cfg, model, guide, at["lr"], device, speed, run.state and run.state["optim"])
        average = WeightAverage.of(cfg, model, guide, at, run.state)
        log = Log(run.dir, run.state is not None) if lead else None
        bar = tqdm(total=sum(steps_per_epoch), initial=at["step"], disable=not (progress and lead),
                   unit="step", dynamic_ncols=True)
        restores, failing, stopped = 0, False, False  # restores since the last checkpoint; whether the last step failed
        while at["epoch"] < cfg.epochs and not stopped:
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
                schedules.epoch_order_seed(run.seed, at["epoch"])))
            batch_size = schedules.batch_size(cfg, at["epoch"])
            while at["batch"] < steps_per_epoch[at["epoch"]]:
                if fast.any_rank(clock.out_of_time()) or (max_steps is not None and at["step"] >= max_steps):
                    stopped = True
                    break
                if schedules.stage(cfg, at["epoch"]) != stage.number:  # stage 2: new networks, a fresh optimiser
                    if average:  # the frozen networks keep stage 1's average, which the scene prior is fitted to
                        average.adopt()
                        average = None
                    at.update(stage=2, lr=run.stage_2_lr)
                    stage = Stage(2, cfg, model, guide, at["lr"], device, speed)
                x = data.batch(_share(order, at["batch"], batch_size), device)
                torch.manual_seed(schedules.step_seed(run.seed, at["step"], fast.rank()))
                clock.tick()
                loss = stage.step(x, schedules.temperature(cfg, at["images"]), schedules.sigma(cfg, at["epoch"]))
                if fast.any_rank(not math.isfinite(loss)):
                    restores, failing = restores + 1, True
                    stage, average = _fall_back(run, model, guide, at, restores, device, speed, bar)
                    continue
                failing = False
                at.update(step=at["step"] + 1, batch=at["batch"] + 1, images=at["images"] + batch_size)
                if average:
                    average.update(at["step"])
                clock.tock()
                if lead and (at["step"] % log_every == 0 or at["batch"] == steps_per_epoch[at["epoch"]]):
                    log.step(at, loss, stage.elbo.last_terms, schedules.temperature(cfg, at["images"]),
                             schedules.sigma(cfg, at["epoch"]), batch_size / clock.step_time)
                    bar.set_postfix(epoch=at["epoch"], loss=f"{loss:.4g}", img_s=f"{batch_size / clock.step_time:.0f}")
                bar.update(1)
                if eval_every and lead and at["step"] % eval_every == 0:
                    with clock.paused() as trained, average.swapped() if average else contextlib.nullcontext(), fast.eager():
                        if at["stage"] == 1:
                            calibrate(guide, data, cfg.batch_size, cfg.calibration_batches, device)
                        score_quality(run.dir, model, guide, eval_data, device, at, trained, log)
            if not stopped:
                at.update(epoch=at["epoch"] + 1, batch=0)
                lr = schedules.learning_rate(cfg, at["lr"], at["epoch"])
                grown = at["epoch"] < cfg.epochs and schedules.stage(cfg, at["epoch"]) == stage.number \
                    and schedules.batch_size(cfg, at["epoch"]) != batch_size  # (stage 2 builds its own Stage)
                if lr != at["lr"] or grown:  # a new rate or batch (a new CUDA graph): Adam's moments go on
                    at["lr"], stage = lr, Stage(stage.number, cfg, model, guide, lr, device, speed, stage.optim_state())
                ends_stage = at["epoch"] == cfg.epochs or schedules.stage(cfg, at["epoch"]) != stage.number
                saved = fast.any_rank(clock.checkpoint_due(ends_stage))
                if saved:
                    _checkpoint(run, model, guide, stage, at, clock, lead, data, device, speed, average)
                    restores = 0
                if saved and figures and lead and log.figures_due(clock.seconds(), at["epoch"] == cfg.epochs):
                    # the model the checkpoint saves, run as plain PyTorch (fast.eager: no graphs compiled for figures)
                    with clock.part("figures"), average.swapped() if average else contextlib.nullcontext(), fast.eager():
                        epoch_figures(run.dir, model, guide, data, device, at["epoch"], log, at["stage"] == 2)
        bar.close()
        if stopped and not failing:  # a state that only a fall-back reached is no better than the checkpoint
            _checkpoint(run, model, guide, stage, at, clock, lead, data, device, speed, average)
        if stopped:
            bar.write(f"stopped at step {at['step']} (epoch {at['epoch']}) to keep the budget; continue with --resume",
                      file=sys.stderr)
        if lead:
            log.close()
    return load_checkpoint(run.dir, device)


class Stage:
    """A stage's SVI (Sec. 4) at one learning rate, with Adam's moments from optim_state, and its step.
    Stage 1: every network, the ELBO of Sec. 4. Stage 2: ζ, ξ and Q(y) alone (the rest frozen), the
    ELBO of the guide's posterior modes under the scene prior."""

    def __init__(self, number, cfg, model, guide, lr, device, speed, optim_state=None):
        self.number, self.guide = number, guide
        for p in [*model.parameters(), *guide.parameters()]:
            p.requires_grad_(number == 1)
        for net in (model.zeta, model.xi, guide.encode_y):
            net.requires_grad_(True)
        model.train(number == 1)  # stage 2: the frozen networks' batch-norm statistics stay frozen too
        guide.train(number == 1)
        optim = fast.optimiser(lr, device, speed)
        self.loaded = {name: _at_rate(s, lr) for name, s in (optim_state or {}).items()}
        optim.set_state(self.loaded)
        self.elbo = from_config(cfg) if number == 1 else scene_prior_elbo(cfg)
        if fast.world_size() > 1:
            fast.over_processes(self.elbo)
        if number == 1:
            self.svi = SVI(model, guide, optim, loss=self.elbo)
            self.step_1 = fast.stage_1_step(self.svi, self.elbo, speed, device)
        else:
            self.svi = SVI(model.scene_prior, guide.scene_posterior, optim, loss=self.elbo)

    def step(self, x, temperature, sigma):
        if self.number == 1:
            return self.step_1(x, temperature, sigma)
        modes = self.guide.modes(x)  # fit the scene prior to this batch's posterior modes
        return self.svi.step(len(x), modes["theta"], modes["z"], modes["d"])

    def optim_state(self):
        """Adam's state of every parameter: as loaded, then as stepped since."""
        return {**self.loaded, **self.svi.optim.get_state()}


def _at_rate(state, lr):
    """A torch optimiser's state dict with its learning rate set to lr."""
    return {**state, "param_groups": [{**g, "lr": lr} for g in state["param_groups"]]}


class Clock:
    """Wall time trained, over every call of the run (scoring during training left out), where it went,
    and whether the budget leaves room for another step."""

    PARTS = ("first_steps", "checkpoints", "figures", "checks")  # besides the steps; see `record`

    def __init__(self, state, budget):
        self.start, self.budget, self.before = time.monotonic(), budget, state["seconds"] if state else 0.0
        self.step_time, self.plan_time, self.excluded, self.ticks = 0.0, 0.0, 0.0, 0
        self.stepping = state.get("step_seconds") if state else 0.0  # the steps' own seconds (None: not recorded)
        parts = state.get("time_parts") if state else dict.fromkeys(self.PARTS, 0.0)
        self.parts = None if parts is None else dict(parts)  # None: a run from before they were recorded
        self.checkpointed = None  # clock.seconds() at this call's latest checkpoint

    def out_of_time(self):
        return self.budget is not None and time.monotonic() - self.start + 3 * self.plan_time + 5 > self.budget

    def tick(self):
        self.ticked = time.monotonic()

    def tock(self):  # running averages of the step's time: all steps (the logged rate), and those the
        took = time.monotonic() - self.ticked  # budget plans with, from the fourth step of the call on: the
        self.ticks += 1  # first ones compile the networks and capture the CUDA graph
        if self.stepping is not None:
            self.stepping += took
        self.step_time = self._average(self.step_time, took)
        if self.ticks > WARM_UP_STEPS:
            self.plan_time = self._average(self.plan_time, took)
        else:
            self._add("first_steps", took)

    @staticmethod
    def _average(mean, took):  # exponential, over about the last ten steps; the first step starts it
        return 0.9 * mean + 0.1 * took if mean else took

    def seconds(self):
        return self.before + time.monotonic() - self.start - self.excluded

    def checkpoint_due(self, must=False):
        """Whether the epoch that ends now writes the checkpoint: one that must (the end of a stage), the
        call's first, and between them one at least CHECKPOINT_EVERY_S of training after the last."""
        return must or self.checkpointed is None or self.seconds() - self.checkpointed >= CHECKPOINT_EVERY_S

    @contextlib.contextmanager
    def part(self, name, paused=False):
        """Time the work within as one of PARTS; paused: left out of the seconds trained (scoring).
        -> (as `with ... as trained`) the seconds trained as it begins."""
        trained, began = self.seconds(), time.monotonic()
        try:
            yield trained
        finally:
            took = time.monotonic() - began
            self._add(name, took)
            if paused:
                self.excluded += took

    def paused(self):  # a check of held-out images: outside the minutes trained, which it reads as it begins
        return self.part("checks", paused=True)

    def _add(self, name, seconds):
        if self.parts is not None:
            self.parts[name] += seconds

    def record(self):
        """A checkpoint's entries of the clock, as it is written (which they mark): the seconds trained; the
        steps' seconds; and time_parts, seconds up to this checkpoint in each call's first WARM_UP_STEPS
        steps (compiling, graph capture: within the steps' seconds), in writing checkpoints, in drawing
        figures, and in checks (outside the seconds trained)."""
        self.checkpointed = self.seconds()
        return {"seconds": self.checkpointed, "step_seconds": self.stepping,
                "time_parts": None if self.parts is None else dict(self.parts)}


def _networks(run, device, speed):
    """The run's model and guide on device (from its checkpoint, or initialised from its seed), run as
    speed asks, and where training stands: {epoch, batch, step, stage, lr}."""
    pyro.clear_param_store()
    torch.manual_seed(run.seed)
    model, guide = Model(run.cfg).to(device), Guide(run.cfg).to(device)
    at = {"epoch": 0, "batch": 0, "step": 0, "images": 0, "stage": 1, "lr": run.lr}
    if run.state is not None:
        model.load_state_dict(run.state["model"])
        guide.load_state_dict(run.state["guide"])
        at.update(position(run.state))
    fast.accelerate(model, guide, speed, device)
    fast.cache.load(run.dir, speed)  # what an earlier call of the run compiled: no compiling on a fresh machine
    return model, guide, at


def steps_in_epoch(cfg, data, epoch=0):
    """Full batches in epoch `epoch` of data, once its images fit cfg; else an InputError."""
    if data.image_size != cfg.image_size:
        raise InputError(f"images are {data.image_size}×{data.image_size} but {cfg.dataset} needs "
                         f"{cfg.image_size}×{cfg.image_size}")
    batch_size = schedules.batch_size(cfg, epoch)
    if len(data) < batch_size:
        raise InputError(f"{len(data)} training images are fewer than one batch of {batch_size}"
                         + (f" (epoch {epoch}'s, after batch_growth_epochs)" if batch_size != cfg.batch_size else ""))
    return len(data) // batch_size


def position(state):
    """Where a checkpoint's training stands: {epoch, batch, step, images, stage}. Checkpoints from before the
    batch could grow count images as steps × batch size."""
    return {**{k: state[k] for k in ("epoch", "batch", "step")}, "stage": state.get("stage", 1),
            "images": state.get("images", state["step"] * state["config"]["batch_size"])}


def _share(order, batch, batch_size):
    """This process's share of the batch-th batch of the epoch's order."""
    local = batch_size // fast.world_size()
    start = batch * batch_size + fast.rank() * local
    return order[start:start + local]


def calibrate(guide, data, batch_size, batches, device):
    """Set the guide's batch-norm running statistics, in place, to their plain average over the
    decompositions (guide.modes) of the first `batches` batches of data (none: nothing changes);
    the weights and the guide's train or eval mode stay. Train mode reads only a batch's own
    statistics, so the steps that follow are the same as without it (docs/RESULTS.md, "Why the
    checks swing")."""
    n = min(len(data), batches * batch_size)
    if n:
        update_bn((data.batch(torch.arange(k, min(k + batch_size, n)), device) for k in range(0, n, batch_size)),
                  _Decomposing(guide).train(guide.training))


class _Decomposing(torch.nn.Module):
    """The guide as a decomposition runs it, for torch's update_bn."""

    def __init__(self, guide):
        super().__init__()
        self.guide = guide

    def forward(self, x):
        return self.guide.modes(x)


def _checkpoint(run, model, guide, stage, at, clock, lead, data, device, speed, average=None):
    with clock.part("checkpoints"):
        entries = clock.record()  # every process: each decides the next one by it
        with fast.eager():  # calibration runs the networks as plain PyTorch: no graphs compiled for it
            if lead and at["stage"] == 1:
                calibrate(guide, data, run.cfg.batch_size, run.cfg.calibration_batches, device)
            if lead and average:
                with average.swapped():
                    calibrate(guide, data, run.cfg.batch_size, run.cfg.calibration_batches, device)
                    averaged = {"model": _copy(model.state_dict()), "guide": _copy(guide.state_dict())}
        if lead:
            save_checkpoint(run.dir, {**({"average": averaged} if average else {}),
                "config": dataclasses.asdict(run.cfg), "seed": run.seed, "model": model.state_dict(),
                "guide": guide.state_dict(), "optim": stage.optim_state(), **at,
                "temperature": schedules.temperature(run.cfg, at["images"]), "sigma": schedules.sigma(run.cfg, at["epoch"]),
                **entries, "cache": run.cache, "cache_fingerprint": run.cache_fingerprint})
            fast.cache.save(run.dir, speed)
        if fast.world_size() > 1:
            torch.distributed.barrier()


def _fall_back(run, model, guide, at, restores, device, speed, bar):
    """A non-finite loss: back to the last checkpoint (networks, Adam's moments, position) at half the
    learning rate; after MAX_RESTORES since that checkpoint, or with none to go back to, a TrainingError."""
    step, lr = at["step"], at["lr"]
    if not (run.dir / "checkpoint.pt").exists():
        raise TrainingError(f"the loss was not finite at step {step}, before any checkpoint to go back to: "
                            f"try a lower --lr (this run's is {lr:g}) or other loss weights")
    if restores > MAX_RESTORES:
        raise TrainingError(f"the loss was not finite at step {step} after {MAX_RESTORES} restores of the last "
                            f"checkpoint at ever lower learning rates (now {lr:g}): the checkpoint is left as it "
                            "was; try a lower --lr or other loss weights")
    bar.write(f"non-finite loss at step {step}: restoring the last checkpoint, learning rate {lr:g} -> {lr / 2:g}",
              file=sys.stderr)
    state = load_checkpoint(run.dir, device)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    if at["stage"] == 2:  # if the checkpoint is of stage 1, stage 2 starts again, at half its rate too
        run.stage_2_lr = lr / 2
    at.update(position(state), lr=lr / 2)
    return (Stage(at["stage"], run.cfg, model, guide, at["lr"], device, speed, state["optim"]),
            WeightAverage.of(run.cfg, model, guide, at, state))


def _copy(state_dict):
    return {k: v.clone() for k, v in state_dict.items()}


class WeightAverage:
    """A moving average of the networks' weights and batch-norm statistics through stage 1 (Polyak
    averaging; ours, not in the paper): after step t, average ← average + (1 − δ_t)(weights − average)
    with δ_t = min(decay, (1 + t) / (10 + t)), so that early on it follows the weights closely. The
    steps are the same as without it; checks and saved models read the average (`swapped`), and stage
    2 starts from it (`adopt`). Floating-point entries of the state dicts only (not batch counts)."""

    def __init__(self, nets, decay, averaged=None):
        self.decay = decay
        self.weights = [t for net in nets for t in net.state_dict().values() if t.is_floating_point()]
        if averaged is None:
            self.average = [t.clone() for t in self.weights]
        else:  # a checkpoint's {"model": state dict, "guide": state dict}, in the order of nets
            saved = [t for sd in (averaged["model"], averaged["guide"]) for t in sd.values() if t.is_floating_point()]
            if [a.shape for a in saved] != [w.shape for w in self.weights]:
                raise TrainingError("the checkpoint's weight average does not match the networks")
            self.average = [torch.empty_like(w).copy_(a) for a, w in zip(saved, self.weights)]  # w's layout

    @classmethod
    def of(cls, cfg, model, guide, at, state):
        """The run's average, from its checkpoint's state where it has one; None where it keeps none."""
        if not cfg.weight_average or at["stage"] != 1:
            return None
        return cls((model, guide), cfg.weight_average, state and state.get("average"))

    @torch.no_grad()
    def update(self, t):
        torch._foreach_lerp_(self.average, self.weights, 1 - min(self.decay, (1 + t) / (10 + t)))

    @torch.no_grad()
    def adopt(self):
        """The networks take the average's values."""
        torch._foreach_copy_(self.weights, self.average)

    @contextlib.contextmanager
    def swapped(self):
        """A context in which the networks hold the average; what they hold at its end (a calibration's
        statistics) is kept in the average, and the weights as trained come back."""
        with torch.no_grad():
            trained = [t.clone() for t in self.weights]
            self.adopt()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.average, self.weights)
                torch._foreach_copy_(self.weights, trained)
