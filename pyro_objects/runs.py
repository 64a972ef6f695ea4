"""A run directory: its config, checkpoint, log and figures.

    RUN/config.json      the resolved config
    RUN/checkpoint.pt    networks, optimiser, counters and RNG state; written atomically
    RUN/log.csv          the loss terms, temperature, σ and learning rate every few steps
    RUN/figures/         decompositions and samples
    RUN/tb/              TensorBoard events
"""
import dataclasses
import json
import os
from pathlib import Path

import torch

from .config import Config
from .errors import InputError
from .guide import Guide
from .model import Model


def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path over path: readers see the old file or the new, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_config(run_dir, cfg):
    atomic_write(Path(run_dir) / "config.json",
                 lambda p: p.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n"))


def config_from_dict(d):
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = set(d) - fields
    if unknown:
        raise InputError(f"config has unknown fields: {', '.join(sorted(unknown))}")
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def save_checkpoint(run_dir, state):
    atomic_write(Path(run_dir) / "checkpoint.pt", lambda p: torch.save(state, p))


def load_checkpoint(run_dir, device="cpu"):
    """The run's checkpoint, or an InputError that says what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist")
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{path} is missing: train first (pyro-objects train DATASET --out {run_dir})")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise InputError(f"{path} is corrupt and cannot be read ({type(e).__name__})") from None
    if not isinstance(state, dict) or not {"model", "guide", "config"} <= set(state):
        raise InputError(f"{path} is not a pyro-objects checkpoint")
    return state


def load_run(run_dir, device="cpu"):
    """(cfg, model, guide, state) of a trained run, networks in eval mode on device."""
    state = load_checkpoint(run_dir, device)
    cfg = config_from_dict(state["config"])
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    return cfg, model.eval(), guide.eval(), state
