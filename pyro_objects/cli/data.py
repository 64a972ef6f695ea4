"""data make, data show: dataset caches, and a look at a dataset's images and ground truth."""
from pathlib import Path

import click

from .. import data as datasets
from ..config import config_for
from ..data import blender, shards
from ..files import check_output
from ..viz import FIGURE_MAX, scenes_figure, truth_figure
from . import main
from .common import pick_device


@main.group("data")
def data_group():
    """Datasets: make caches of them, look at them."""


@data_group.command("make")
@click.argument("name")
@click.option("--n", type=click.IntRange(min=0), help="Training images (default: the config's, 90,000; 0: no train split).")
@click.option("--n-eval", type=click.IntRange(min=0), help="Held-out images (default: the config's, 10,000; 0: no eval split).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Directory for the shards.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=10_000, show_default=True, help="Images per shard.")
@click.option("--device", help="Where to generate (default: the GPU if there is one).")
@click.option("--renderer", type=click.Choice(shards.RENDERERS), default="torch", show_default=True,
              help="CLEVR only: blender renders the same scenes with Cycles on the CPU (pip install -e \".[blender]\").")
def make_command(name, n, n_eval, out_dir, seed, shard_size, device, renderer):
    """Generate a dataset's train and eval splits into uint8 shards with a manifest of checksums.

    Each shard is also a ground-truth file for `pyro-objects score` (images, amodal, count).
    Train with the cache: pyro-objects train NAME --data DIR."""
    cfg = config_for(name)
    if name.startswith("folder:"):
        raise click.ClickException("a folder of images is its own cache: train on folder:PATH directly")
    sizes = {"train": cfg.n_train if n is None else n, "eval": cfg.n_eval if n_eval is None else n_eval}
    sizes = {split: k for split, k in sizes.items() if k > 0}
    if not sizes:
        raise click.ClickException("--n 0 and --n-eval 0 leave nothing to make")
    shards.check_new(out_dir, sizes, shard_size)
    settings = None
    if renderer == "blender":
        blender.require_variant(name)
        settings = blender.settings()  # an InputError where bpy is missing
        splits = ((split, blender.load(name, split, n, seed)) for split, n in sizes.items())
    else:
        device = pick_device(device)
        splits = ((split, datasets.load(name, split, n, seed, device, cfg)) for split, n in sizes.items())
    shards.make(name, splits, out_dir, seed, shard_size, progress=lambda split, k: click.echo(f"{split}: {k} images"),
                renderer=renderer, settings=settings)
    click.echo(f"{name} -> {out_dir}/manifest.json")


@data_group.command("show")
@click.argument("name")
@click.option("--n", type=click.IntRange(min=1, max=FIGURE_MAX), default=16, show_default=True, help="Images to show.")
@click.option("--split", type=click.Choice(["train", "eval"]), default="train", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: NAME.png).")
def show_command(name, n, split, seed, out):
    """A grid of images with their modal segmentation and amodal masks."""
    cfg = config_for(name)
    out = check_output(out or f"{Path(name.split(':')[-1]).name}.png", "png")
    d = datasets.load(name, split, n, seed=seed, cfg=cfg)
    if d.has_truth:
        truth_figure(d.images[:n], d.amodal[:n], d.count[:n], out)
    else:
        scenes_figure(datasets.to_float(d.images[:n]), out)
    click.echo(f"{min(n, len(d))} images of {name} -> {out}")
