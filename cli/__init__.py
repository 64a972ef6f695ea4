"""The pyro-objects command line: each command turns its options into library calls."""
import click
import matplotlib
import torch

from pyro_objects.errors import InputError

matplotlib.use("Agg")  # the commands write figures to files; no window is ever opened


class _Group(click.Group):
    """Bad input ends with one line that names the problem and exit status 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            raise click.ClickException(str(e)) from None
        except torch.cuda.OutOfMemoryError as e:  # checkpoints are written atomically: nothing is lost
            first = str(e).splitlines()[0] if str(e) else "CUDA out of memory"
            raise click.ClickException(f"{first.rstrip('.')}: try a smaller batch (--batch-size, --batch-sizes)") from None


@click.group(cls=_Group)
@click.version_option(package_name="pyro-objects")
def main():
    """Learn, sample and decompose images made of objects."""


from . import commands  # noqa: E402,F401  (registers the commands)
from . import bench  # noqa: E402,F401
from . import data  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
