"""A run directory: its config, checkpoint, log and figures.

    RUN/config.json      the resolved config
    RUN/checkpoint.pt    written atomically when a run stops and at an epoch's end: a call's first,
                         each stage's last, and between them at most once a minute (train.py):
                         config, seed, the networks' state_dicts ("model", "guide"), the
                         optimiser's state in Pyro's form ({parameter name: torch Adam state}),
                         epoch, batch (the position in the epoch's shuffle), step, stage, the
                         learning rate, the temperature and σ reached, seconds trained and where
                         they went (train.Clock.record), and the dataset cache trained from. No
                         RNG state: each step's seed comes from its number (schedules.step_seed),
                         so a run resumes exactly without one.
    RUN/compiled.bin     with --compile: what torch.compile built, so that a resumed run on another
                         machine need not compile it again (fast/cache.py); copied into a new
                         run's folder before it starts, it serves that run too
    RUN/commands.txt     the command lines that trained it (pyro-objects export records them)
    RUN/log.csv          the loss terms, temperature, σ and learning rate every few steps
    RUN/quality.csv      held-out scores against minutes trained (train --eval-every)
    RUN/figures/         decompositions and samples
    RUN/tb/              TensorBoard events

A baseline's run (pyro_objects/baselines/train.py) has the same files; its checkpoint holds
"baseline" (the peer's name) and "sizes" in place of "guide", and the optimiser's own state_dict.

`start` and `resume` make the `Run` that `train.train` goes on with; `load_run` gives a
trained run's model and guide.
"""
import dataclasses
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from . import pretrained
from .config import LOSS_WEIGHTS, Config, check, with_preset
from .data import shards
from .errors import InputError
from .files import atomic_write
from .guide import Guide
from .model import Model

# Fields of configs written before the speed flags left Config: read and ignored.
RETIRED = ("placement", "precision", "compile", "channels_last", "cuda_graphs", "cache")


@dataclass
class Run:
    """What training goes on from: a run directory, its config and seed, its checkpoint (None for
    a new run), the learning rate to go on with and the one stage 2 starts at, its data cache, and
    the command line that asked for it (added to RUN/commands.txt when training starts)."""
    dir: Path
    cfg: Config
    seed: int = 0
    state: Optional[dict] = None
    lr: float = 5e-4
    stage_2_lr: float = 5e-4
    cache: Optional[str] = None
    command: Optional[str] = None
    cache_fingerprint: Optional[str] = None  # data.shards.fingerprint of the cache's training images


def start(cfg, run_dir, seed=0, lr=None, cache=None):
    """A new run of cfg in run_dir (which must hold none), at learning rate lr (default cfg.lr),
    on the images of a dataset cache made by `pyro-objects data make` (default: generated)."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoint.pt").exists():
        raise InputError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    cfg = check_networks(check(cfg.replace(lr=lr or cfg.lr)))
    cache, fingerprint = new_cache(cache)
    return Run(run_dir, cfg, seed, None, cfg.lr, cfg.lr, cache, cache_fingerprint=fingerprint)


def same_seed(run_dir, seed, own):
    """An InputError unless seed, the one a resumed run was given (None: none), is the run's own."""
    if seed is not None and seed != own:
        raise InputError(f"{run_dir} was started with --seed {own}: a resumed run keeps its seed "
                         "(leave --seed out, or start a new run with --out elsewhere)")


def new_cache(cache):
    """What a new run records of the dataset cache it trains from -> (absolute path, fingerprint),
    or (None, None) for generated images."""
    return (str(Path(cache).resolve()), shards.fingerprint(cache)) if cache else (None, None)


def resume(run_dir, lr=None, weights=None, scene_prior_epochs=None, n_train=None, device="cpu", cache=None,
           dataset=None, seed=None):
    """The run in run_dir, to go on where it stopped.

    lr: go on at this rate (Adam's moments are kept); later steps of the schedule still apply.
    weights: {name: value} of loss weights (config.LOSS_WEIGHTS) to go on with.
    scene_prior_epochs: end the run with this many epochs of stage 2 alone, of n_train images
    each (default: the run's own): the scene prior of a run stopped in stage 1.
    cache: where the run's dataset cache lies now, if it has moved (locate_cache).
    dataset: the dataset the caller names, refused unless it is the run's (any folder: for a folder's, whose
    path may be spelt another way; baselines.train._resumed checks its runs alike). seed: the seed the
    caller names, refused unless it is the run's (`same_seed`).
    """
    state = ours(load_checkpoint(run_dir, device), run_dir)
    trained_on = state["config"]["dataset"]
    folders = trained_on.startswith("folder:") and str(dataset).startswith("folder:")
    if dataset is not None and dataset != trained_on and not folders:
        raise InputError(f"{run_dir} is a run on {trained_on}, not {dataset}: resume it with "
                         f"pyro-objects train {trained_on} --resume --out {run_dir}")
    same_seed(run_dir, seed, state["seed"])
    cache, fingerprint = locate_cache(state, cache, run_dir)
    cfg = config_from_dict(state["config"])
    if scene_prior_epochs:
        if has_scene_prior(state):
            raise InputError("this run is already in stage 2: continue it with --resume alone")
        first = max(state["epoch"] + (1 if state["batch"] else 0), 1)  # a started epoch ends in stage 1
        cfg = cfg.replace(epochs=first + scene_prior_epochs, hyperprior_epochs=scene_prior_epochs,
                          n_train=n_train or cfg.n_train)
    if weights:
        others = sorted(set(weights) - set(LOSS_WEIGHTS))
        if others:
            raise InputError(f"cannot change {', '.join(others)} of a resumed run: only its loss weights "
                             f"({', '.join(LOSS_WEIGHTS)})")
        cfg = check(cfg.replace(**weights))
    return Run(Path(run_dir), cfg, state["seed"], state, lr or state["lr"], lr or cfg.lr, cache,
               cache_fingerprint=fingerprint)


def locate_cache(state, given, run_dir):
    """The dataset cache a run's checkpoint trained from, where it lies now -> (path or None, fingerprint).

    given: None (the recorded place), or a directory holding the same training images moved
    elsewhere, checked by their checksums against the fingerprint the run recorded (runs from
    before fingerprints: against the recorded cache, which must then still be there)."""
    recorded, known = state.get("cache"), state.get("cache_fingerprint")
    there = bool(recorded) and (Path(recorded) / "manifest.json").is_file()
    if given is None:
        if recorded and not there:
            raise InputError(f"{run_dir} trained on the dataset cache {recorded}, which is not there: give its "
                             "new place with --data DIR")
        return recorded, known or (shards.fingerprint(recorded) if recorded else None)  # an older run gains one
    if not recorded:
        raise InputError(f"{run_dir} trained on generated images, not a cache: --data cannot change what it trains on")
    if known is None and not there:
        raise InputError(f"{run_dir} recorded no checksums of its cache {recorded} (an older run), so {given} cannot "
                         "be checked against it: put the cache back there")
    found = shards.fingerprint(given)
    if found != (known or shards.fingerprint(recorded)):
        raise InputError(f"{given} holds other training images than {run_dir}'s cache {recorded}")
    return str(Path(given).resolve()), found


def check_networks(cfg):
    """cfg, if its networks build and fit its sizes; else an InputError that names what does not fit."""
    try:
        Model(cfg), Guide(cfg)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"the networks of this config do not fit together: {e}") from None
    return cfg


def has_scene_prior(state):
    """Whether a checkpoint's ζ, ξ and Q(y) have been trained (its run reached stage 2)."""
    return state.get("stage", 1) == 2


@contextmanager
def lock(run_dir):
    """Hold RUN/.lock while training run_dir: a second process that tries is refused in one line; a lock
    left behind by a process that has ended is taken over."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None:
                raise InputError(f"{run_dir} is being trained by another process (pid {holder}): "
                                 "wait for it to end, or choose another --out") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_holder(path):
    """The pid in a lock file while its process runs (-1: a process is writing it), else None."""
    try:
        text, age = path.read_text().strip(), time.time() - path.stat().st_mtime
    except OSError:  # gone meanwhile
        return None
    if not text.isdigit():
        return -1 if age < 10 else None
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's, running
        pass
    return int(text)


def save_config(run_dir, cfg):
    atomic_write(Path(run_dir) / "config.json",
                 lambda p: p.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n"))


def config_from_dict(d):
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = set(d) - fields - set(RETIRED)
    if unknown:
        raise InputError(f"config has unknown fields: {', '.join(sorted(unknown))}")
    cfg = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})
    if "calibration_batches" not in d:  # a run from before the field: what its preset sets now
        cfg = cfg.replace(calibration_batches=with_preset(cfg, cfg.preset).calibration_batches)
    if "weight_average" not in d:  # a run from before the field kept no average
        cfg = cfg.replace(weight_average=0.0)
    return cfg


def save_checkpoint(run_dir, state):
    atomic_write(Path(run_dir) / "checkpoint.pt", lambda p: torch.save(state, p))


def load_checkpoint(run_dir, device="cpu"):
    """The run's checkpoint, or an InputError that says what is wrong. run_dir may name a
    pretrained model instead: "pretrained:clevr3" (pyro_objects/pretrained)."""
    if pretrained.is_pretrained(str(run_dir)):
        return pretrained.read(str(run_dir), device)
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise InputError(f"{run_dir} is a file, not a run directory" +
                         (f" (an exported model is read as pretrained:{run_dir})" if run_dir.suffix == ".pt" else ""))
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} does not exist")
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{path} is missing: train first (pyro-objects train DATASET --out {run_dir})")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise InputError(f"{path} is corrupt and cannot be read ({type(e).__name__})") from None
    if not isinstance(state, dict) or not {"model", "config"} <= set(state) or not {"guide", "baseline"} & set(state):
        raise InputError(f"{path} is not a pyro-objects checkpoint")
    return state


def ours(state, run_dir):
    """A checkpoint of our model, or an InputError for a baseline's (pyro_objects.baselines)."""
    if "baseline" in state:
        raise InputError(f"{run_dir} holds a run of the {state['baseline']} baseline: only `decompose`, `evaluate` and "
                         f"(the VAE's, MONet's) `sample` read it, and `pyro-objects baseline train {state['baseline']} ... "
                         "--resume` continues it")
    return state


def output_path(run_dir, *parts):
    """Where a command writes by default: RUN_DIR/parts..., or NAME-file in the working directory
    for a pretrained model (whose files are the package's own)."""
    if pretrained.is_pretrained(str(run_dir)):
        return Path(f"{Path(str(run_dir)[len(pretrained.PREFIX):]).stem}-{parts[-1]}")
    return Path(run_dir, *parts)


def record_command(run_dir, line):
    """Add the command line that trained (or resumed) a run to RUN/commands.txt, one line each."""
    path = Path(run_dir) / "commands.txt"
    before = path.read_text() if path.is_file() else ""
    atomic_write(path, lambda p: p.write_text(before + line + "\n"))


def commands(run_dir):
    path = Path(run_dir) / "commands.txt"
    return path.read_text().splitlines() if path.is_file() else []


def load_run(run_dir, device="cpu"):
    """(cfg, model, guide, state) of a trained run, networks in eval mode on device."""
    state = ours(load_checkpoint(run_dir, device), run_dir)
    cfg = config_from_dict(state["config"])
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    weights = state.get("average", state)  # stage 1's moving average, where training kept one (train.WeightAverage)
    model.load_state_dict(weights["model"])
    guide.load_state_dict(weights["guide"])
    return cfg, model.eval(), guide.eval(), state
