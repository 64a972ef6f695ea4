"""data show: look at a dataset's images and ground truth."""
from pathlib import Path

import click

from pyro_objects import data as datasets
from pyro_objects.config import config_for
from pyro_objects.viz import scenes_figure, truth_figure

from . import main


@main.group("data")
def data_group():
    """Datasets: look at them."""


@data_group.command("show")
@click.argument("name")
@click.option("--n", type=int, default=16, show_default=True, help="Images to show.")
@click.option("--split", default="train", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: NAME.png).")
def show_command(name, n, split, seed, out):
    """A grid of images with their modal segmentation and amodal masks."""
    cfg = config_for(name)
    d = datasets.load(name, split, n, seed=seed, cfg=cfg)
    out = Path(out or f"{Path(name.split(':')[-1]).name}.png")
    if d.has_truth:
        truth_figure(d.images[:n], d.amodal[:n], d.count[:n], out)
    else:
        scenes_figure(datasets.to_float(d.images[:n]), out)
    click.echo(f"{min(n, len(d))} images of {name} -> {out}")
