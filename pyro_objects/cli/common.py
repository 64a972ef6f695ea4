"""What several commands share: the device, durations, finite numbers."""
import math
import re
import shlex

import click
import torch

from ..errors import InputError


class Finite(click.FloatRange):
    """click.FloatRange that refuses nan and inf too (a range lets nan through: no comparison with it holds)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def from_command_line(name):
    """Whether the current command's parameter `name` was given on the command line (not its default)."""
    return click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def pick_device(device):
    """--device as given (cpu, cuda, cuda:N), or the GPU where there is one; an InputError for a
    device this machine lacks."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown --device {device!r}: use cpu, cuda or cuda:N") from None
    if kind.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device} is not supported: use cpu, cuda or cuda:N")
    if kind.type == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but this machine has no CUDA GPU")
    if kind.index is not None and kind.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    return device


def parse_duration(text):
    """'9m' -> 540.0, '90s' -> 90.0, '1h' -> 3600.0, '120' -> 120.0 seconds; None (or '': no option given) -> None."""
    if text is None or text == "":
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise InputError(f"cannot read the duration {text!r}: use e.g. 90s, 9m or 1h")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds == 0:
        raise InputError(f"the duration {text!r} is no time at all: give more, e.g. 90s, 9m or 1h")
    return seconds


def command_line(ctx):
    """The command as it was given, rebuilt from click's parsed parameters (what differs from the
    defaults), e.g. "pyro-objects train clevr3 --seed 1 --time-budget 400s"."""
    words = ["pyro-objects", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif value not in (None, False, (), param.default):
            flag = max(param.opts, key=len)
            if param.is_flag:
                words.append(flag)
            else:
                words += [w for v in (value if param.multiple else [value]) for w in (flag, str(v))]
    return " ".join(shlex.quote(w) for w in words)
