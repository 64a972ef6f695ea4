"""The pyro-objects command line: each command turns its options into one library call."""
import click
import matplotlib
import torch

from ..errors import InputError, TrainingError

matplotlib.use("Agg")  # the commands write figures to files; no window is ever opened


class _Group(click.Group):
    """Bad input ends with one line that names the problem and exit status 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (InputError, TrainingError) as e:
            raise click.ClickException(str(e)) from None
        except click.UsageError as e:  # a glob the shell expanded reaches --input as many arguments
            if "unexpected extra argument" in e.message and e.ctx is not None and e.ctx.params.get("input_path"):
                e.message += "; to read a glob of images, quote it: --input 'DIR/*.png'"
            raise
        except torch.cuda.OutOfMemoryError as e:  # checkpoints are written atomically: nothing is lost
            first = str(e).splitlines()[0] if str(e) else "CUDA out of memory"
            raise click.ClickException(f"{first.rstrip('.')}: try a smaller batch (--batch-size, --batch-sizes)") from None
        except OSError as e:  # a file that cannot be read or written: named, in one line
            raise click.ClickException(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)) from None


@click.group(cls=_Group)
@click.version_option(package_name="pyro-objects")
def main():
    """Learn, sample and decompose images made of objects."""


from . import baselines, bench, data, evaluate, models, pretrained, train  # noqa: E402,F401  (each registers its commands)
