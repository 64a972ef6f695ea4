"""pyro-objects train."""
import os
from pathlib import Path

import click
import torch
import torch.distributed as dist

from .. import runs
from ..config import LOSS_WEIGHTS, PRESETS, Speed, config_for, parse_settings, quick, with_preset, with_settings
from ..errors import InputError
from ..train import train
from . import main
from .common import Finite, command_line, from_command_line, parse_duration, pick_device


@main.command("train")
@click.argument("dataset")
@click.option("--quick", "is_quick", is_flag=True, help="Tiny data and networks: minutes on a CPU.")
@click.option("--preset", type=click.Choice(list(PRESETS)),
              help="ours (the default) or paper-training: our networks with the paper's schedules and readings "
                   "(App. B, Eq. 5; docs/DESIGN.md lists what it sets and what stays ours).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the config's).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per step (default: the config's).")
@click.option("--n-train", type=click.IntRange(min=1), help="Training images (default: the config's).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Set any other config field (pyro_objects/config.py) of a new run, e.g. --set beta_z=2000 "
                   "--set sigma=0.005,0.004; repeat for several. With --resume, only the loss weights "
                   f"({', '.join(LOSS_WEIGHTS)}).")
@click.option("--lr", type=Finite(min=0, min_open=True),
              help="Adam's learning rate (default: the config's); with --resume, the rate to go on with. "
                   "Either way the config's lr_decay_epochs still step it down (and batch_growth_epochs scale it).")
@click.option("--no-hyperprior", is_flag=True,
              help="Skip stage 2 (the scene prior over y): the ablation of Table 2; recorded as hyperprior_epochs 0.")
@click.option("--data", "cache", type=click.Path(file_okay=False),
              help="Read the training images from this cache (made by `pyro-objects data make`) instead of generating "
                   "them; with --resume, where the run's cache lies now if it has moved (checked by its checksums).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run directory (default: runs/DATASET).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--scene-prior", "scene_prior_epochs", type=click.IntRange(min=1), metavar="EPOCHS",
              help="With --resume: end the run with EPOCHS epochs of stage 2 alone, fitting the scene prior to a "
                   "run stopped in stage 1 (Table 2); --n-train may set the images an epoch.")
@click.option("--time-budget", help="Stop cleanly, with a checkpoint, before this much time: 90s, 9m, 1h.")
@click.option("--eval-every", type=click.IntRange(min=1), metavar="STEPS",
              help="Score 500 held-out images every STEPS steps into RUN/quality.csv and figures/quality.png "
                   "against the minutes trained: time to quality.")
@click.option("--max-steps", type=click.IntRange(min=1), metavar="STEPS",
              help="Stop cleanly, with a checkpoint, at this step, counted from the run's start (with --resume "
                   "too): runs compared by steps rather than minutes.")
@click.option("--device", help="cpu or cuda (default: cuda if there is one).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="bf16: the convolutional networks under bf16 autocast.")
@click.option("--compile", "compiled", is_flag=True, help="torch.compile the convolutional networks and the blend.")
@click.option("--channels-last", is_flag=True,
              help="Convolutional networks in channels_last layout. With bf16 and --compile, the fastest at large "
                   "batches (docs/PERFORMANCE.md).")
@click.option("--no-cuda-graphs", is_flag=True,
              help="Launch every kernel of a step from Python instead of replaying the step as a CUDA graph "
                   "(the default on one GPU: the same steps, about twice as fast at batch 100).")
def train_command(dataset, is_quick, preset, epochs, batch_size, n_train, settings, lr, no_hyperprior, cache, run_dir, seed,
                  resume, scene_prior_epochs, time_budget, eval_every, max_steps, device, precision, compiled,
                  channels_last, no_cuda_graphs):
    """Train on DATASET: polygons, multi-dsprites, clevr3, clevr5, clevr5-vbg, or folder:PATH.

    Stage 1 trains the decoders and the encoder; stage 2, the last hyperprior_epochs epochs
    (never the first epoch), fits the scene prior ζ, ξ and Q(y) to the posterior modes.
    The speed options (--precision, --compile, --channels-last, --no-cuda-graphs) may change
    when a run is resumed; what it trains may not."""
    budget = parse_duration(time_budget)  # a bad one refused before anything starts
    cfg = with_preset(config_for(dataset), preset or "ours")
    cfg = quick(cfg) if is_quick else cfg
    run_dir = Path(run_dir or f"runs/{Path(dataset.split(':')[-1]).name}{'-quick' if is_quick else ''}")
    if resume:
        fixed = {"--preset": preset, "--epochs": epochs, "--batch-size": batch_size,
                 "--n-train": None if scene_prior_epochs else n_train, "--no-hyperprior": no_hyperprior}
        given = [name for name, value in fixed.items() if value]
        if given:
            raise InputError(f"{', '.join(given)} cannot change a run that goes on with --resume: it keeps its own "
                             "config (--lr, --time-budget, --eval-every, --device, the speed options, --set of loss "
                             "weights, --scene-prior with --n-train, and --data for its cache moved can change)")
        weights = parse_settings(cfg, settings, allowed=LOSS_WEIGHTS)
        run = runs.resume(run_dir, lr, weights, scene_prior_epochs, n_train, cache=cache, dataset=dataset,
                          seed=seed if from_command_line("seed") else None)
    else:
        if scene_prior_epochs:
            raise InputError("--scene-prior goes on from a trained run: give it with --resume")
        options = {"epochs": epochs, "batch_size": batch_size, "n_train": n_train,
                   "hyperprior_epochs": 0 if no_hyperprior else None}
        cfg = with_settings(cfg, settings).replace(**{k: v for k, v in options.items() if v is not None})
        run = runs.start(cfg, run_dir, seed, lr, cache)
    speed = Speed(precision=precision, compile=compiled, channels_last=channels_last, cuda_graphs=not no_cuda_graphs)
    device = pick_device(device)
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1  # launched by torchrun: one process per GPU
    if distributed:
        device = join_process_group(device)
    run.command = command_line(click.get_current_context())  # into RUN/commands.txt once the run starts
    if resume:
        before, now = speed_options((runs.commands(run_dir) or [""])[-1]), speed_options(run.command)
        if before != now:
            click.echo(f"note: {run_dir} last trained with {before or 'the default speed options'}; it goes on with "
                       f"{now or 'the defaults'} (--resume keeps what a run trains, not how fast: give them again)",
                       err=True)
    state = train(run, device=device, speed=speed, time_budget=budget,
                  max_steps=max_steps, eval_every=eval_every)
    if distributed:
        dist.destroy_process_group()
    click.echo(f"{run_dir}: epoch {state['epoch']}/{state['config']['epochs']}, step {state['step']}; "
               f"figures in {run_dir / 'figures'}")


def speed_options(line):
    """The speed options of a recorded command line, as words:
    'pyro-objects train clevr3 --precision bf16 --compile' -> '--precision bf16 --compile'."""
    words, kept = line.split(), []
    for i, word in enumerate(words):
        if word == "--precision" and i + 1 < len(words):
            kept += words[i:i + 2]
        elif word in ("--compile", "--channels-last", "--no-cuda-graphs"):
            kept.append(word)
    return " ".join(kept)


def join_process_group(device):
    """Join torchrun's process group: NCCL on GPUs, gloo on CPUs. Returns this process's device."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device
