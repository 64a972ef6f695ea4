"""Training a peer model (pyro_objects.baselines) on our data: a plain torch loop with our run
directory, time budget, resume, progress bar, log.csv, TensorBoard and quality.csv.

    for each epoch:
        for each batch of the epoch's fixed shuffle (schedules.epoch_order_seed):
            seed the step (schedules.step_seed); loss(x).backward(); the optimiser's step
        checkpoint; figures/decomposition.png (at most once a minute)

Each peer has its paper's optimiser: Slot Attention Adam with warm-up and decay (its
learning_rate(step)), MONet RMSProp at 1e-4, and batches of 64. The VAE has ours, which the paper
does not give for its baseline: Adam at cfg.lr, our schedule of σ (schedules.sigma) and the
config's batch. The checkpoint holds everything the next step depends on (each step's seed comes
from its number), so a run stopped and resumed ends bit for bit where an uninterrupted one would.
"""
import dataclasses
import json
import math
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import data as datasets
from .. import schedules
from ..config import check, config_for, quick
from ..errors import InputError, TrainingError
from ..files import atomic_write
from ..monitor import Log, epoch_figures, score_quality
from ..runs import (config_from_dict, load_checkpoint, locate_cache, lock, new_cache, record_command, same_seed,
                    save_checkpoint)
from ..train import Clock, steps_in_epoch
from . import build, check_name, monet, slot_attention

BATCH = {"slot-attention": slot_attention.BATCH, "monet": monet.BATCH}  # the papers'; the VAE: the config's


def baseline_config(name, dataset, is_quick=False):
    """Our config of dataset (its image size, object count, σ and data sizes) at the peer's paper's
    batch size; is_quick: quick(cfg)'s small data and batches."""
    cfg = config_for(dataset).replace(hyperprior_epochs=0)  # no scene prior to fit: a peer has no stage 2
    return quick(cfg).replace(hyperprior_epochs=0) if is_quick else \
        cfg.replace(batch_size=BATCH.get(check_name(name), cfg.batch_size))


def optimiser(name, model, cfg):
    if name == "slot-attention":
        return slot_attention.optimiser(model.parameters())
    if name == "monet":
        return monet.optimiser(model.parameters())
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def step(name, model, optim, x, cfg, at):
    """One optimiser step on x [B, 3, N, N] at the schedules' rate and σ -> (loss, {term: float})."""
    if name == "slot-attention":
        for group in optim.param_groups:
            group["lr"] = slot_attention.learning_rate(at["step"])
    sigma = schedules.sigma(cfg, at["epoch"]) if name == "vae" else None
    loss, terms = model.loss(x, sigma) if name == "vae" else model.loss(x)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(f"the {name} loss was not finite at step {at['step']}: the checkpoint is left as it was")
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return value, {**{k: float(v) for k, v in terms.items()}, **({"sigma": sigma} if sigma else {})}


def train_baseline(name, cfg, run_dir, device="cpu", seed=None, resume=False, time_budget=None, max_steps=None,
                   data=None, cache=None, eval_every=None, eval_data=None, sizes=None, figures=True, log_every=25,
                   progress=True, command=None):
    """Train the peer `name` (baselines.MODELS) on cfg's dataset into run_dir, to cfg.epochs, to
    time_budget seconds or to max_steps (counted from the run's start), whichever comes first
    -> the final checkpoint's state.

    seed: a new run's (default 0). resume: go on with run_dir's run (its own config, seed and sizes; cfg and
    seed, if given, must be its dataset's and its own; cache, if given, is where its cache lies now:
    runs.locate_cache).
    data: a Dataset to train on (default: cfg's dataset, generated, or read from cache, a directory made by
    `pyro-objects data make`). eval_every: every this many steps, score the decomposition of eval_data
    (default: 500 held-out images) into RUN/quality.csv.
    sizes: narrower networks than the papers' (baselines.QUICK). command: the command line, added to
    RUN/commands.txt once the run starts.
    """
    run_dir, state = Path(run_dir), None
    check_name(name)
    if resume:
        state = _resumed(name, cfg, run_dir, device, seed)
        cfg, seed, sizes = config_from_dict(state["config"]), state["seed"], state["sizes"]
        cache, fingerprint = locate_cache(state, cache, run_dir)  # cache: where it lies now, if it moved
    elif (run_dir / "checkpoint.pt").exists():
        raise InputError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    else:
        cache, fingerprint = new_cache(cache)
        seed = 0 if seed is None else seed
    clock = Clock(state, time_budget)  # the budget counts from here: data included
    torch.manual_seed(seed)
    model, at = build(name, check(cfg), sizes).to(device), {"epoch": 0, "batch": 0, "step": 0}
    optim = optimiser(name, model, cfg)
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        at.update({k: state[k] for k in at})
    with lock(run_dir):
        data = datasets.resident(data or datasets.load(cfg.dataset, "train", cfg.n_train, seed, device, cfg, cache), device)
        steps = steps_in_epoch(cfg, data)
        atomic_write(run_dir / "config.json", lambda p: p.write_text(json.dumps(
            {"baseline": name, "sizes": sizes or {}, **dataclasses.asdict(cfg)}, indent=2) + "\n"))
        if command:
            record_command(run_dir, command)
        if eval_every and eval_data is None:
            eval_data = datasets.load(cfg.dataset, "eval", 500, device=device, cfg=cfg, cache=cache)
        log = Log(run_dir, state is not None)
        bar = tqdm(total=cfg.epochs * steps, initial=at["step"], disable=not progress, unit="step", dynamic_ncols=True)
        stopped = False
        while at["epoch"] < cfg.epochs and not stopped:
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
                schedules.epoch_order_seed(seed, at["epoch"])))
            while at["batch"] < steps:
                if clock.out_of_time() or (max_steps is not None and at["step"] >= max_steps):
                    stopped = True
                    break
                x = data.batch(order[at["batch"] * cfg.batch_size:(at["batch"] + 1) * cfg.batch_size], device)
                torch.manual_seed(schedules.step_seed(seed, at["step"]))
                clock.tick()
                loss, terms = step(name, model, optim, x, cfg, at)
                at.update(step=at["step"] + 1, batch=at["batch"] + 1)
                clock.tock()
                if at["step"] % log_every == 0 or at["batch"] == steps:
                    log.write({"step": at["step"], "epoch": at["epoch"], "loss": loss, **terms,
                               "lr": optim.param_groups[0]["lr"], "images_per_s": cfg.batch_size / clock.step_time})
                    bar.set_postfix(epoch=at["epoch"], loss=f"{loss:.4g}", img_s=f"{cfg.batch_size / clock.step_time:.0f}")
                bar.update(1)
                if eval_every and at["step"] % eval_every == 0:
                    with clock.paused() as trained:
                        score_quality(run_dir, model, None, eval_data, device, at, trained, log)
            if not stopped:
                at.update(epoch=at["epoch"] + 1, batch=0)
                if clock.checkpoint_due(at["epoch"] == cfg.epochs):
                    _checkpoint(run_dir, name, cfg, seed, sizes, (cache, fingerprint), model, optim, at, clock)
                if figures and log.figures_due(clock.seconds(), at["epoch"] == cfg.epochs):
                    with clock.part("figures"):
                        epoch_figures(run_dir, model, None, data, device, at["epoch"], log)
        bar.close()
        if stopped:
            _checkpoint(run_dir, name, cfg, seed, sizes, (cache, fingerprint), model, optim, at, clock)
            bar.write(f"stopped at step {at['step']} (epoch {at['epoch']}) to keep the budget; continue with --resume",
                      file=sys.stderr)
        log.close()
    return load_checkpoint(run_dir, device)


def _resumed(name, cfg, run_dir, device, seed=None):
    """The checkpoint of run_dir's run of `name`, or an InputError that says why it cannot go on."""
    if not (run_dir / "checkpoint.pt").is_file():
        raise InputError(f"{run_dir} holds no run to resume: train it first, without --resume")
    state = load_checkpoint(run_dir, device)
    if state.get("baseline") != name:
        what = f"the {state['baseline']} baseline" if "baseline" in state else "our model (pyro-objects train)"
        raise InputError(f"{run_dir} holds a run of {what}, not of {name}")
    if cfg is not None and cfg.dataset != state["config"]["dataset"]:
        raise InputError(f"{run_dir} was trained on {state['config']['dataset']}, not on {cfg.dataset}")
    same_seed(run_dir, seed, state["seed"])
    return state


def _checkpoint(run_dir, name, cfg, seed, sizes, cache, model, optim, at, clock):
    """cache: (path, fingerprint) of the dataset cache trained from, or (None, None)."""
    with clock.part("checkpoints"):
        save_checkpoint(run_dir, {"baseline": name, "config": dataclasses.asdict(cfg), "seed": seed, "sizes": sizes or {},
                                  "model": model.state_dict(), "optim": optim.state_dict(), **at, **clock.record(),
                                  "cache": cache[0], "cache_fingerprint": cache[1]})
