"""Trained models shipped inside the package, read by name wherever a run directory is read:
`pyro-objects decompose pretrained:clevr3`, `runs.load_run("pretrained:clevr3")`.

    pyro_objects/pretrained/NAME.pt       the networks' weights in float16 (read back as float32), the
                                          config, σ and the stage reached, and "about": the training
                                          commands, the git commit, the dataset generator's version, and
                                          held-out scores of the float32 and the float16 networks
    pyro_objects/pretrained/NAME.sha256   the .pt file's SHA-256, checked before every read

A file is made by `pyro-objects export RUN OUT.pt` (pyro_objects/export.py). `pretrained:PATH.pt`
reads an exported file anywhere on disk, checked against PATH.sha256 beside it.
"""
from pathlib import Path

import torch

from ..errors import InputError
from ..files import sha256

PREFIX = "pretrained:"
DIR = Path(__file__).parent


def is_pretrained(spec):
    return isinstance(spec, str) and spec.startswith(PREFIX)


def names():
    """The models shipped with the package, by name."""
    return sorted(p.stem for p in DIR.glob("*.pt"))


def path_of(spec):
    """'pretrained:clevr3' or 'pretrained:PATH.pt' -> the file's Path (an InputError if there is none)."""
    name = spec[len(PREFIX):] if is_pretrained(spec) else spec
    path = Path(name) if name.endswith(".pt") else DIR / f"{name}.pt"
    if not path.is_file():
        shipped = ", ".join(f"{PREFIX}{n}" for n in names()) or "none"
        raise InputError(f"there is no pretrained model {name!r} (shipped: {shipped}; or give pretrained:PATH.pt)")
    return path


def read(spec, device="cpu"):
    """A pretrained model as a checkpoint dict (runs.load_checkpoint's form, weights float32), after its
    checksum is checked: a damaged or unchecked file is refused in one line, never half-read."""
    path = path_of(spec)
    check = path.with_suffix(".sha256")
    if not check.is_file():
        raise InputError(f"{path} has no checksum file {check.name} beside it: it cannot be checked, so it is not read")
    if sha256(path) != check.read_text().split()[0]:
        raise InputError(f"{path} is damaged: its SHA-256 does not match {check.name} (reinstall pyro-objects, "
                         "or export it again)")
    state = torch.load(path, map_location=device, weights_only=True)
    for part in ("model", "guide"):
        state[part] = {k: v.float() if v.is_floating_point() else v for k, v in state[part].items()}
    return state


def about(spec):
    """What made a pretrained model: its "about" record (commands, commit, scores, ...) and its config."""
    state = read(spec)
    return {**state["about"], "config": state["config"]}
