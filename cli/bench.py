"""bench: throughput on this machine, as a table and JSON."""
import click

from pyro_objects.bench import bench, table, write_json
from pyro_objects.config import config_for, quick
from pyro_objects.errors import InputError

from . import main
from .commands import pick_device


@main.command("bench")
@click.argument("dataset", default="polygons")
@click.option("--batch-sizes", default="100", show_default=True, help="Comma-separated batch sizes.")
@click.option("--repeats", type=int, default=20, show_default=True, help="Timed repeats per figure (median).")
@click.option("--variants", "--precision", default="fp32", show_default=True,
              help="Comma-separated; each a precision (fp32, bf16), flags (compile, channels_last, graphs) and a "
                   "placement (fft, direct) joined by '+', e.g. fp32,fp32+graphs,bf16+compile,direct. "
                   "--precision is its old name.")
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
    cfg = quick(config_for(dataset)) if is_quick else config_for(dataset)
    rows = bench(cfg, pick_device(device), sizes, repeats=repeats, warmup=max(2, repeats // 4),
                 variants=variants.split(","), data_n=data_n)
    click.echo(table(rows))
    if json_path:
        write_json(rows, json_path)
