"""Training by stochastic variational inference, resumable to the step.

A straight loop: each step is one `SVI.step` on a batch. The checkpoint holds
everything the next step depends on (networks, Adam's state, the stage, the
position in the epoch's fixed shuffle; each step's seed comes from its number),
so a run stopped by its time budget and resumed ends where an uninterrupted run would.
The learning rate steps down by `cfg.lr_decay` at the start of each epoch in `cfg.lr_decay_epochs`.

Two stages (Sec. 4, App. B). Stage 1 trains the decoders and the guide with the
fixed priors (no y). Stage 2, the last `cfg.hyperprior_epochs` epochs, freezes
them and fits the hyperprior ζ, ξ and Q(y | z, θ, d) by SVI on the guide's
posterior modes: the model is `Model.scene_prior` observing the modes' θ, z, d,
the guide `Guide.scene_posterior`. With hyperprior_epochs = 0 there is no stage 2
(the ablation of Table 2).

On one GPU a stage-1 step is recorded once as a CUDA graph and replayed (cuda_graph.py):
the same step, without Python between its kernels.
"""
import csv
import dataclasses
import math
import re
import sys
import time
from pathlib import Path

import pyro
import pyro.optim
import torch
import torch.distributed as dist
from pyro.infer import SVI
from tqdm.auto import tqdm

from . import data as datasets
from .config import LOSS_WEIGHTS
from .cuda_graph import GraphedStep
from .elbo import from_config, scene_prior_elbo
from .errors import InputError
from .guide import Guide
from .model import Model
from .runs import config_from_dict, load_checkpoint, save_checkpoint, save_config


class Adam(pyro.optim.PyroOptim):
    """Pyro's optimiser interface over a single torch Adam for every parameter.

    pyro.optim.Adam keeps one torch optimiser per parameter and steps them one by one;
    one optimiser over all of them runs its update as a few fused kernels instead.
    Parameters without a gradient (the stage-2 networks during stage 1) are left alone.
    """

    def __init__(self, modules, lr):
        params = [p for m in modules for p in m.parameters()]
        fused = all(p.is_cuda for p in params)
        self.adam = torch.optim.Adam(params, lr=lr, fused=fused or None)
        self.lr = lr

    def __call__(self, params, *args, **kwargs):  # SVI's params are ignored: the modules' are stepped
        if world_size() > 1:  # data parallel: every rank steps with the gradient of the global batch
            grads = [p.grad for group in self.adam.param_groups for p in group["params"] if p.grad is not None]
            flat = torch.cat([g.flatten() for g in grads])  # one all-reduce, not one per parameter
            dist.all_reduce(flat)
            for g, summed in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(summed.view_as(g))
        self.adam.step()
        self.adam.zero_grad(set_to_none=True)

    def get_state(self):
        return self.adam.state_dict()

    def set_state(self, state):  # Adam's moments and step counts; the learning rate stays this optimiser's
        self.adam.load_state_dict(state)
        for group in self.adam.param_groups:
            group["lr"] = self.lr
            group["capturable"] = False  # a CUDA-graphed run's state goes on anywhere; GraphedStep sets it again


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if world_size() > 1 else 0


def step_seed(seed, step, rank=0):
    """The seed of one step's random draws: runs resume exactly with no RNG state saved."""
    return (seed * 1_000_003 + step) * 64 + rank


def temperature(cfg, step):  # App. B: sharpness 0.3·2^(1e-4·i); the temperature is its inverse
    """i counts App. B's steps of 100 images, so that a larger batch anneals at the same rate per image."""
    a, rate = cfg.sharpness
    i = step * cfg.batch_size / 100
    return max(1.0 / (a * 2.0 ** (rate * i)), cfg.min_temperature)


def sigma(cfg, epoch):  # App. B: σ drops from 0.01/√3 to 0.01/√5 part-way through; ours: wider in the first epochs
    if epoch < cfg.sigma_warmup_epochs:
        return cfg.sigma_warmup
    return cfg.sigma[0] if epoch < cfg.sigma_switch * cfg.epochs else cfg.sigma[1]


def stage(cfg, epoch):  # Sec. 4: stage 2 is the last hyperprior_epochs epochs, never the first epoch
    return 2 if cfg.hyperprior_epochs > 0 and epoch >= max(cfg.epochs - cfg.hyperprior_epochs, 1) else 1


def has_scene_prior(state):
    """Whether a checkpoint's ζ, ξ and Q(y) have been trained (its run reached stage 2)."""
    return state.get("stage", 1) == 2


def scene_prior_from_here(cfg, state, epochs, n_train=None):  # Sec. 4, Table 2
    """The config of a run stopped in stage 1 that goes on with `epochs` epochs of stage 2 alone,
    after the epoch it stopped in; n_train: images an epoch from then on (default: the run's)."""
    if has_scene_prior(state):
        raise InputError("this run is already in stage 2: continue it with --resume alone")
    first = max(state["epoch"] + (1 if state["batch"] else 0), 1)  # a started epoch ends in stage 1
    return cfg.replace(epochs=first + epochs, hyperprior_epochs=epochs, n_train=n_train or cfg.n_train)


def parse_duration(text):
    """'9m' -> 540.0, '90s' -> 90.0, '1h' -> 3600.0, '120' -> 120.0 seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise InputError(f"cannot read the duration {text!r}: use e.g. 90s, 9m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def train(cfg, run_dir, device="cpu", seed=0, resume=False, time_budget=None, max_steps=None, data=None,
          log_every=25, figures=True, progress=True, eval_every=None, eval_data=None, lr=None,
          scene_prior_epochs=None, n_train=None, cuda_graphs=None, weights=None):
    """Train (or, with resume, continue training) a run. Returns the run's final checkpoint state.

    time_budget: seconds; training stops cleanly, with a checkpoint, before it runs out.
    max_steps: stop the same way once this many steps (counted from the run's start) are done.
    data: a Dataset to train on (default: the config's dataset, generated from the seed).
    eval_every: every this many steps, score the decomposition of eval_data (default: 500
    held-out images) into RUN/quality.csv against the minutes trained so far: time to quality.
    lr: a learning rate other than cfg.lr; with resume, other than the run's own (Adam's moments are kept).
    Either way, each later epoch of cfg.lr_decay_epochs multiplies it by cfg.lr_decay; stage 2 starts at
    this lr, or at cfg.lr when none is given.
    scene_prior_epochs: with resume, end the run with this many epochs of stage 2 alone, of n_train
    images each (default: the run's own number): the scene prior of a run stopped in stage 1.
    cuda_graphs: True or False in place of cfg.cuda_graphs (the run's own, with resume); the steps are the same.
    weights: with resume, loss weights ({name: value}, names from config.LOSS_WEIGHTS) to go on with.
    """
    start_time = time.monotonic()
    run_dir = Path(run_dir)
    me, world = rank(), world_size()
    lead = me == 0  # only the first rank writes the checkpoint, log and figures
    state = None
    if resume:
        state = load_checkpoint(run_dir, device)
        cfg, seed = config_from_dict(state["config"]), state["seed"]
        if scene_prior_epochs:
            cfg = scene_prior_from_here(cfg, state, scene_prior_epochs, n_train)
    elif (run_dir / "checkpoint.pt").exists():
        raise InputError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    else:
        cfg = cfg.replace(lr=lr or cfg.lr)
    if weights:
        others = sorted(set(weights) - set(LOSS_WEIGHTS))
        if not resume or others:
            raise InputError(f"cannot change {', '.join(others) or 'loss weights'} here: only a resumed run takes new "
                             f"values, and only of its loss weights ({', '.join(LOSS_WEIGHTS)})")
        cfg = cfg.replace(**weights)
    if cuda_graphs is not None:
        cfg = cfg.replace(cuda_graphs=cuda_graphs)
    if cfg.batch_size % world:
        raise InputError(f"batch size {cfg.batch_size} does not split evenly over {world} processes")
    local = cfg.batch_size // world
    if lead:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(run_dir, cfg)

    pyro.clear_param_store()
    pyro.enable_validation(False)  # argument checks cost host synchronisations on every step
    torch.backends.cudnn.benchmark = True  # the shapes never change: cuDNN times its algorithms once, then runs the fastest
    torch.manual_seed(seed)
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    stage_2_lr = lr or cfg.lr  # stage 2 fits new networks: it starts at the given rate or the base one
    lr = cfg.lr if state is None else (lr or state["lr"])  # a fresh cfg already holds a given lr
    if data is None:
        data = datasets.load(cfg.dataset, "train", cfg.n_train, seed, device=device, cfg=cfg)
    if data.image_size != cfg.image_size:
        raise InputError(f"images are {data.image_size}×{data.image_size} but {cfg.dataset} needs {cfg.image_size}×{cfg.image_size}")
    steps_per_epoch = len(data) // cfg.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"{len(data)} training images are fewer than one batch of {cfg.batch_size}")

    if eval_every and lead and eval_data is None:
        eval_data = datasets.load(cfg.dataset, "eval", 500, device=device, cfg=cfg)
    epoch, batch, step, current, optim_state, seconds_before = 0, 0, 0, 1, None, 0.0
    if state is not None:
        seconds_before = state.get("seconds", 0.0)
        model.load_state_dict(state["model"])
        guide.load_state_dict(state["guide"])
        epoch, batch, step, optim_state = state["epoch"], state["batch"], state["step"], state["optim"]
        current = state.get("stage", 1)  # the stage whose optimiser state the checkpoint holds

    def begin_stage(number, lr, optim_state=None):
        """The stage's optimiser (with Adam's moments from optim_state), SVI, objective and stage-1 step."""
        optim, svi, elbo = stage_svi(number, cfg, model, guide, lr)
        if optim_state is not None:
            optim.set_state(optim_state)
        return optim, svi, elbo, stage_1_step(svi, elbo, cfg, device)

    optim, svi, elbo, step_1 = begin_stage(current, lr, optim_state)

    scoring_time = 0.0  # spent on eval_every's scoring, not counted as training

    def seconds():  # wall time trained so far, over every call of the run
        return seconds_before + time.monotonic() - start_time - scoring_time

    def checkpoint():
        if lead:
            save_checkpoint(run_dir, {
                "config": dataclasses.asdict(cfg), "seed": seed, "model": model.state_dict(),
                "guide": guide.state_dict(), "optim": optim.get_state(), "epoch": epoch, "batch": batch,
                "step": step, "stage": current, "lr": lr, "temperature": temperature(cfg, step),
                "sigma": sigma(cfg, epoch), "seconds": seconds()})
        if world > 1:
            dist.barrier()

    log = _Log(run_dir, resume) if lead else None
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=step, disable=not (progress and lead), unit="step",
               dynamic_ncols=True)
    step_time, stopped = 0.0, False
    while epoch < cfg.epochs and not stopped:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        while batch < steps_per_epoch:
            out_of_time = time_budget is not None and time.monotonic() - start_time + 3 * step_time + 5 > time_budget
            if _any_rank(out_of_time, world) or (max_steps is not None and step >= max_steps):
                stopped = True
                break
            if stage(cfg, epoch) != current:  # stage 2 begins: a fresh optimiser over ζ, ξ and Q(y) only
                current, lr = stage(cfg, epoch), stage_2_lr
                optim, svi, elbo, step_1 = begin_stage(current, lr)
            model.train(current == 1)  # stage 2: the frozen networks' batch-norm statistics stay frozen too
            guide.train(current == 1)
            tick = time.monotonic()
            start = batch * cfg.batch_size + me * local  # this rank's share of the global batch
            x = data.batch(order[start:start + local], device)
            torch.manual_seed(step_seed(seed, step, me))
            if current == 1:
                loss = step_1(x, temperature(cfg, step), sigma(cfg, epoch))
            else:  # fit the hyperprior to this batch's posterior modes
                modes = guide.modes(x)
                loss = svi.step(len(x), modes["theta"], modes["z"], modes["d"])
            if _any_rank(not math.isfinite(loss), world):
                lr = _fall_back(run_dir, step, lr, model, guide, device, bar)
                optim, svi, elbo, step_1 = begin_stage(current, lr)
                pyro.clear_param_store()
                continue
            step, batch = step + 1, batch + 1
            step_time = 0.9 * step_time + 0.1 * (time.monotonic() - tick) if step_time else time.monotonic() - tick
            if lead and (step % log_every == 0 or batch == steps_per_epoch):
                terms = {k: float(v) for k, v in elbo.last_terms.items()}
                log.write(step, epoch, current, loss, terms, temperature(cfg, step), sigma(cfg, epoch), lr,
                          cfg.batch_size / step_time)
                bar.set_postfix(epoch=epoch, loss=f"{loss:.4g}", img_s=f"{cfg.batch_size / step_time:.0f}")
            bar.update(1)
            if eval_every and lead and step % eval_every == 0:
                tick = time.monotonic()
                _score_quality(run_dir, model, guide, eval_data, device, step, epoch, seconds(), log)
                scoring_time += time.monotonic() - tick
        if not stopped:
            epoch, batch = epoch + 1, 0
            if stage(cfg, epoch) == 1 and epoch in cfg.lr_decay_epochs:  # the schedule: a step down, Adam's moments kept
                lr *= cfg.lr_decay
                optim, svi, elbo, step_1 = begin_stage(current, lr, optim.get_state())
            checkpoint()
            if figures and lead:
                _figures(run_dir, model, guide, data, device, epoch, log, current == 2)
    bar.close()
    if stopped:
        checkpoint()
        bar.write(f"stopped at step {step} (epoch {epoch}) to keep the budget; continue with --resume", file=sys.stderr)
    if lead:
        log.close()
    return load_checkpoint(run_dir, device)


def stage_svi(number, cfg, model, guide, lr):
    """(optimiser, SVI, objective) of a stage. Stage 1: every network, the ELBO of Sec. 4.
    Stage 2: only ζ, ξ and Q(y), the ELBO of the posterior modes under the hyperprior.
    The optimiser steps the networks' weights without their being registered as Pyro params."""
    model.pyro_params = guide.pyro_params = False
    if number == 1:
        optim, elbo = Adam([model, guide], lr), from_config(cfg)
        return optim, SVI(model, guide, optim, loss=elbo), elbo
    optim, elbo = Adam([model.zeta, model.xi, guide.encode_y], lr), scene_prior_elbo(cfg)
    return optim, SVI(model.scene_prior, guide.scene_posterior, optim, loss=elbo), elbo


def stage_1_step(svi, elbo, cfg, device):
    """A function (x, temperature, sigma) -> loss that takes one stage-1 step: svi.step, replayed
    as a CUDA graph where it can be (cfg.cuda_graphs, a CUDA device, one process)."""
    if cfg.cuda_graphs and str(device).startswith("cuda") and world_size() == 1:
        return GraphedStep(svi.model, svi.guide, elbo, svi.optim)
    return lambda x, temperature, sigma: svi.step(x, temperature=temperature, sigma=sigma)


def _any_rank(flag, world):
    """True on every rank if it is true on any: all ranks stop, or fall back, together."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return bool(t.item())


def _fall_back(run_dir, step, lr, model, guide, device, bar):
    """A non-finite loss: restore the last good checkpoint's networks and halve the learning rate."""
    bar.write(f"non-finite loss at step {step}: restoring the last checkpoint, learning rate {lr:g} -> {lr / 2:g}",
              file=sys.stderr)
    if not (Path(run_dir) / "checkpoint.pt").exists():
        raise FloatingPointError(f"non-finite loss at step {step}, before any checkpoint was written")
    state = load_checkpoint(run_dir, device)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    return lr / 2


QUALITY = ("mIOU", "aIOU", "DPA", "FG-ARI", "MSE")


def _score_quality(run_dir, model, guide, eval_data, device, step, epoch, seconds, log):
    """Append the decomposition scores of eval_data to RUN/quality.csv and redraw figures/quality.png."""
    from .evaluate import PAPER, decomposition_scores
    from .viz import quality_figure
    model.eval()  # the next step sets the training mode again
    guide.eval()
    scores, _ = decomposition_scores(model, guide, eval_data, device=device)
    row = {"step": step, "epoch": epoch, "minutes": seconds / 60, **{k: scores.get(k, "") for k in QUALITY}}
    path = Path(run_dir) / "quality.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    for k in QUALITY:
        if row[k] != "":
            log.scalar(f"quality/{k}", row[k], step)
    log.scalar("quality/speck_slots", len(scores["slots"]["specks"]), step)  # label-free: slots drawing specks
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    quality_figure(rows, PAPER.get(eval_data.name, {}), Path(run_dir) / "figures" / "quality.png")


def _figures(run_dir, model, guide, data, device, epoch, log, scene_prior=False):
    from .decompose import decompose
    from .interventions import sample
    from .viz import decomposition_figure, samples_figure
    x = data.batch(torch.arange(min(8, len(data))), device)
    path = Path(run_dir) / "figures" / "decomposition.png"
    fig = decomposition_figure(x, decompose(model, guide, x), path)
    log.figure("decomposition", fig, epoch)
    if scene_prior:  # scenes from the hyperprior, as `pyro-objects sample` draws them
        fig = samples_figure(sample(model, 8, hyperprior=True)[0], Path(run_dir) / "figures" / "samples.png")
        log.figure("samples", fig, epoch)


STAGE_2_TERMS = ("nll_theta", "nll_z", "nll_d", "kl_y")


class _Log:
    """log.csv, and TensorBoard where it is installed."""

    def __init__(self, run_dir, resume):
        self.path = Path(run_dir) / "log.csv"
        self.file = open(self.path, "a" if resume else "w", newline="")
        self.writer, self.fields = None, None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
        except ImportError:
            self.tb = None

    def write(self, step, epoch, stage, loss, terms, temperature, sigma, lr, images_per_s):
        row = {"step": step, "epoch": epoch, "stage": stage, "loss": loss, **terms, "temperature": temperature,
               "sigma": sigma, "lr": lr, "images_per_s": images_per_s}
        if self.writer is None:
            if self.file.tell() > 0:  # resumed: keep the columns already there
                with open(self.path, newline="") as f:
                    self.fields = next(csv.reader(f))
            else:  # stage 1's terms and stage 2's; a row leaves the other stage's blank
                self.fields = list(row) + [t for t in STAGE_2_TERMS if t not in row]
            self.writer = csv.DictWriter(self.file, self.fields, extrasaction="ignore")
            if self.file.tell() == 0:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, step)

    def scalar(self, tag, value, step):
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def figure(self, tag, fig, epoch):
        if self.tb is not None and fig is not None:
            self.tb.add_figure(tag, fig, epoch)

    def close(self):
        self.file.close()
        if self.tb is not None:
            self.tb.close()
