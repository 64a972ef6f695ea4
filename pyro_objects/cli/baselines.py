"""baseline train: a peer model (pyro_objects.baselines) trained on our data, like `train`."""
from pathlib import Path

import click

from ..baselines import QUICK, check_name
from ..baselines.train import baseline_config, train_baseline
from ..config import config_for
from ..errors import InputError
from . import main
from .common import command_line, from_command_line, parse_duration, pick_device


@main.group("baseline")
def baseline_group():
    """Peer models trained and scored like ours: vae, slot-attention, monet."""


@baseline_group.command("train")
@click.argument("name")
@click.argument("dataset")
@click.option("--quick", "is_quick", is_flag=True, help="Narrow networks, small data and batches: minutes on a CPU.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (default: the dataset's config's).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Images per step (default: the peer's paper's, 64; the VAE: the dataset's config's).")
@click.option("--n-train", type=click.IntRange(min=1), help="Training images (default: the dataset's config's).")
@click.option("--data", "cache", type=click.Path(file_okay=False),
              help="Read the images from this cache (made by `pyro-objects data make`) instead of generating them; "
                   "with --resume, where the run's cache lies now if it has moved (checked by its checksums).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run directory (default: runs/NAME-DATASET).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--time-budget", help="Stop cleanly, with a checkpoint, before this much time: 90s, 9m, 1h.")
@click.option("--eval-every", type=click.IntRange(min=1), metavar="STEPS",
              help="Score 500 held-out images every STEPS steps into RUN/quality.csv: time to quality.")
@click.option("--max-steps", type=click.IntRange(min=1), metavar="STEPS",
              help="Stop cleanly, with a checkpoint, at this step, counted from the run's start (with --resume "
                   "too): runs compared by steps rather than minutes.")
@click.option("--device", help="cpu or cuda (default: cuda if there is one).")
def train_command(name, dataset, is_quick, epochs, batch_size, n_train, cache, run_dir, seed, resume, time_budget,
                  eval_every, max_steps, device):
    """Train the peer NAME on DATASET (polygons, multi-dsprites, clevr3, clevr5, clevr5-vbg).

    NAME: vae (the paper's baseline), slot-attention (Locatello et al. 2020) or monet (Burgess et al.
    2019); Slot Attention and MONet train with their papers' optimisers, the VAE with ours (Adam,
    our σ schedule). `pyro-objects decompose RUN` and `evaluate RUN` read the run like one of ours;
    aIOU and DPA are n/a (no depth, no amodal masks)."""
    check_name(name)
    budget = parse_duration(time_budget)  # a bad one refused before anything starts
    cfg = config_for(dataset)
    run_dir = Path(run_dir or f"runs/{name}-{Path(dataset.split(':')[-1]).name}{'-quick' if is_quick else ''}")
    options = {"--quick": is_quick, "--epochs": epochs, "--batch-size": batch_size, "--n-train": n_train}
    if resume and any(options.values()):
        raise InputError(f"{', '.join(k for k, v in options.items() if v)} cannot change a run that goes on with "
                         "--resume: it keeps its own config")
    if not resume:
        cfg = baseline_config(name, dataset, is_quick)
        cfg = cfg.replace(**{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("n_train", n_train))
                             if v is not None})
    state = train_baseline(name, cfg, run_dir, pick_device(device), seed if from_command_line("seed") else None, resume,
                           budget, max_steps, cache=cache,
                           eval_every=eval_every,
                           sizes=QUICK[name] if is_quick else None, command=command_line(click.get_current_context()))
    click.echo(f"{run_dir}: {name}, epoch {state['epoch']}/{state['config']['epochs']}, step {state['step']}")
