"""bench and profile: throughput on this machine, and where a training step's time goes."""
import click

from ..config import config_for, quick
from ..errors import InputError
from ..files import check_output
from ..tools.bench import bench, table, write_json
from ..tools.profile import profile_step
from . import main
from .common import pick_device


@main.command("bench")
@click.argument("dataset", default="polygons")
@click.option("--batch-sizes", default="100", show_default=True, help="Comma-separated batch sizes.")
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True, help="Timed repeats per figure (median).")
@click.option("--variants", "--precision", default="fp32", show_default=True,
              help="Comma-separated; each a precision (fp32, bf16) and flags (compile, channels_last, graphs) "
                   "joined by '+', e.g. fp32,fp32+graphs,bf16+compile+channels_last+graphs. --precision is its old name.")
@click.option("--data-n", type=click.IntRange(min=1), help="Images a data-generation call (default: the batch size); "
              "docs/DATASETS.md's figures are of 4096.")
@click.option("--quick", "is_quick", is_flag=True, help="The tiny networks of --quick runs.")
@click.option("--device")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the rows as JSON.")
def bench_command(dataset, batch_sizes, repeats, variants, data_n, is_quick, device, json_path):
    """Images/s of training (Pyro SVI and plain PyTorch), decomposition, sampling, data generation."""
    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        raise InputError(f"--batch-sizes must be integers separated by commas, not {batch_sizes!r}") from None
    if min(sizes) < 1:
        raise InputError(f"--batch-sizes must be at least 1, not {min(sizes)}")
    json_path = check_output(json_path, "json") if json_path else None
    cfg = quick(config_for(dataset)) if is_quick else config_for(dataset)
    rows = bench(cfg, pick_device(device), sizes, repeats=repeats, warmup=max(2, repeats // 4),
                 variants=variants.split(","), data_n=data_n)
    click.echo(table(rows))
    if json_path:
        write_json(rows, json_path)


@main.command("profile")
@click.argument("dataset", default="polygons")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--variant", default="fp32", show_default=True, help="As `bench --variants`, without graphs.")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True, help="Steps profiled.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Largest kernels listed.")
@click.option("--by-shape", is_flag=True, help="List operators with the shapes of their inputs instead.")
@click.option("--quick", "is_quick", is_flag=True, help="The tiny networks of --quick runs.")
@click.option("--device")
def profile_command(dataset, batch, variant, steps, top, by_shape, is_quick, device):
    """Where a training step's time goes: GPU kernel time (CPU operator time) by kind of kernel."""
    cfg = quick(config_for(dataset)) if is_quick else config_for(dataset)
    for line in profile_step(cfg, pick_device(device), batch, variant, steps, top, by_shape):
        click.echo(line)
