"""A trained run reduced to a file that ships (pyro_objects/pretrained): the networks' weights in
float16, no optimiser state, and a record of what made it and what it scores.

    pyro-objects export RUN OUT.pt [--n 1000]

The reduced networks are scored beside the run's own on the same n held-out images; a drop of
more than max_drop on any decomposition metric refuses the export. The scores on the first 8
held-out images are recorded too: the tests score the shipped file on them again.
"""
import datetime
import os
import subprocess
from pathlib import Path

import torch

from . import data as datasets
from . import pretrained, runs
from .data import shards
from .errors import InputError
from .evaluate import decomposition_scores
from .files import atomic_write, sha256
from .metrics import DECOMPOSITION, SCORES

FIRST = 8  # held-out images whose scores the tests check again


def halved(net):
    """A network's state_dict on the CPU, floating-point tensors in float16."""
    return {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in net.state_dict().items()}


def scores_of(model, guide, data, batch_size, device):
    scores, _ = decomposition_scores(model, guide, data, batch_size, device)
    return {k: float(scores[k]) for k in SCORES if k in scores}


def commands_of(run_dir):
    """The run's command lines, its directory written RUN: a shipped file names no path of the machine
    that trained it."""
    return [line.replace(str(run_dir), "RUN") for line in runs.commands(run_dir)]


def git_commit():
    """$PYRO_OBJECTS_COMMIT where it is set (a copy of the tree without its history), else the commit of
    the git tree the package runs from, else "unknown"."""
    if os.environ.get("PYRO_OBJECTS_COMMIT"):
        return os.environ["PYRO_OBJECTS_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def export(run_dir, out, n=1000, batch_size=100, device="cpu", max_drop=0.005):
    """Write OUT.pt and OUT.sha256 from a trained run (atomically, the checksum last). -> the "about" record"""
    out = Path(out)
    if out.suffix != ".pt":
        raise InputError(f"{out}: an exported model is a .pt file")
    if out.exists() and not out.with_suffix(".sha256").exists():
        raise InputError(f"{out} exists and is not an exported model (it has no .sha256 beside it): choose another path")
    if pretrained.is_pretrained(str(run_dir)):
        raise InputError(f"{run_dir} is exported already")
    cfg, model, guide, state = runs.load_run(run_dir, device)
    data = datasets.load(cfg.dataset, "eval", n, seed=0, device=device, cfg=cfg)
    full = scores_of(model, guide, data, batch_size, device)
    reduced = {"model": halved(model), "guide": halved(guide)}
    model.load_state_dict(reduced["model"])  # float16 values, back in the float32 networks
    guide.load_state_dict(reduced["guide"])
    half = scores_of(model, guide, data, batch_size, device)
    first = scores_of(model.cpu(), guide.cpu(), datasets.load(cfg.dataset, "eval", FIRST, seed=0, cfg=cfg), FIRST, "cpu")
    drops = {k: full[k] - half[k] for k in DECOMPOSITION if k in full}
    worst = max(drops, key=drops.get, default=None)
    if worst is not None and drops[worst] > max_drop:
        raise InputError(f"float16 weights lose {drops[worst]:.4f} {worst} (more than {max_drop}): not exported")
    about = {
        "name": out.stem, "dataset": cfg.dataset, "preset": cfg.preset,
        "commands": commands_of(run_dir), "commit": git_commit(),
        "generator_version": shards.VERSION, "renderer": "torch",
        "epoch": state["epoch"], "step": state["step"], "minutes": round(state.get("seconds", 0) / 60, 2),
        "scene_prior": runs.has_scene_prior(state),
        "scores": {"images": len(data), "split": "eval", "seed": 0, "float32": full, "float16": half,
                   f"first_{FIRST}": first},
        "exported": datetime.date.today().isoformat(),
    }
    shipped = {"config": state["config"], "stage": state.get("stage", 1), "sigma": state["sigma"],
               "temperature": state.get("temperature"), "epoch": state["epoch"], "step": state["step"],
               **reduced, "about": about}
    out.parent.mkdir(parents=True, exist_ok=True)
    check = out.with_suffix(".sha256")
    check.unlink(missing_ok=True)  # until the new checksum is written, the file is refused, never misread
    atomic_write(out, lambda p: torch.save(shipped, p))
    atomic_write(check, lambda p: p.write_text(f"{sha256(out)}  {out.name}\n"))
    return about
