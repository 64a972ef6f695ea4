"""train, sample and decompose."""
import os
from pathlib import Path

import click
import numpy as np
import torch

from pyro_objects import data as datasets
from pyro_objects.config import config_for, quick
from pyro_objects.decompose import decompose
from pyro_objects.errors import InputError
from pyro_objects.runs import load_run
from pyro_objects.train import parse_duration, train
from pyro_objects.viz import decomposition_figure, scenes_figure

from . import main


def pick_device(device):
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but this machine has no CUDA GPU")
    return device


def join_process_group(device):
    """Join torchrun's process group: NCCL on GPUs, gloo on CPUs. Returns this process's device."""
    import torch.distributed as dist
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return f"cuda:{local}"
    dist.init_process_group("gloo")
    return device


@main.command("train")
@click.argument("dataset")
@click.option("--quick", "is_quick", is_flag=True, help="Tiny data and networks: minutes on a CPU.")
@click.option("--epochs", type=int, help="Epochs (default: the config's).")
@click.option("--batch-size", type=int, help="Images per step (default: the config's).")
@click.option("--n-train", type=int, help="Training images (default: the config's).")
@click.option("--device", help="cpu or cuda (default: cuda if there is one).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run directory (default: runs/DATASET).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="bf16: networks under bf16 autocast.")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--time-budget", help="Stop cleanly, with a checkpoint, before this much time: 90s, 9m, 1h.")
def train_command(dataset, is_quick, epochs, batch_size, n_train, device, run_dir, seed, precision, resume, time_budget):
    """Train on DATASET: polygons, multi-dsprites, clevr3, clevr5, clevr5-vbg, or folder:PATH."""
    cfg = quick(config_for(dataset)) if is_quick else config_for(dataset)
    changes = {"epochs": epochs, "batch_size": batch_size, "n_train": n_train, "precision": precision}
    changes = {k: v for k, v in changes.items() if v}
    cfg = cfg.replace(**changes)
    run_dir = Path(run_dir or f"runs/{Path(dataset.split(':')[-1]).name}{'-quick' if is_quick else ''}")
    budget = parse_duration(time_budget) if time_budget else None
    device = pick_device(device)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # launched by torchrun: one process per GPU
        device = join_process_group(device)
    state = train(cfg, run_dir, device=device, seed=seed, resume=resume, time_budget=budget)
    click.echo(f"{run_dir}: epoch {state['epoch']}/{cfg.epochs}, step {state['step']}; "
               f"figures in {run_dir / 'figures'}")


@main.command("sample")
@click.argument("run_dir", type=click.Path())
@click.option("--n", type=int, default=64, show_default=True, help="Scenes to generate.")
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: RUN_DIR/figures/samples.png).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device")
def sample_command(run_dir, n, out, seed, device):
    """Generate scenes from a trained run: a grid, each scene above its objects (nearest first)."""
    if n < 1:
        raise InputError("--n must be at least 1")
    device = pick_device(device)
    cfg, model, guide, state = load_run(run_dir, device)
    torch.manual_seed(seed)
    with torch.no_grad():
        scenes = model(n=n, temperature=cfg.min_temperature, sigma=state["sigma"])
    placed = scenes["placed"]
    out = Path(out or Path(run_dir) / "figures" / "samples.png")
    scenes_figure(scenes["x_mean"], out, objects=(placed[:, :, :3], placed[:, :, 3], scenes["d"]))
    click.echo(f"{n} scenes -> {out}")


@main.command("decompose")
@click.argument("run_dir", type=click.Path())
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="An .npz with 'images', uint8 [N, H, W, 3] (default: held-out images of the run's dataset).")
@click.option("--n", type=int, default=8, show_default=True, help="Images in the figure.")
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: RUN_DIR/figures/decompose.png).")
@click.option("--output", "pred_path", type=click.Path(dir_okay=False),
              help="Also export every input image's decomposition to this .npz (the format `score` reads).")
@click.option("--batch-size", type=int, default=100, show_default=True, help="Images per batch for --output.")
@click.option("--device")
def decompose_command(run_dir, input_path, n, out, pred_path, batch_size, device):
    """Decompose images into objects, depths and amodal masks (a figure like the paper's Fig. 4).

    With --output PRED.npz, every image (of --input, or the --n held-out ones) is exported:
    alpha float [N, J, H, W] (each slot's placed amodal alpha), depth float [N, J] (larger is
    farther), theta int [N, J, 2] (row, col of each slot's argmax pixel), recon float [N, H, W, 3] in [0, 1].
    """
    device = pick_device(device)
    cfg, model, guide, _ = load_run(run_dir, device)
    images = read_images(input_path, cfg.image_size) if input_path else \
        datasets.load(cfg.dataset, "eval", max(n, 1), device=device, cfg=cfg).images
    x = datasets.to_float(images[:n].to(device))
    out = Path(out or Path(run_dir) / "figures" / "decompose.png")
    decomposition_figure(x, decompose(model, guide, x), out)
    click.echo(f"{len(x)} images -> {out}")
    if pred_path:
        from pyro_objects.evaluate import predict, save_npz
        save_npz(pred_path, predict(model, guide, images.cpu(), batch_size, device))
        click.echo(f"{len(images)} decompositions -> {pred_path}")


def read_images(path, image_size):
    """uint8 [N, H, W, 3] from an .npz's 'images', checked against the run's image size."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    try:
        with np.load(path) as f:
            if "images" not in f:
                raise InputError(f"{path} has no array named 'images'")
            images = f["images"]
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path} cannot be read as .npz ({type(e).__name__})") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"{path}: 'images' must be uint8 [N, H, W, 3], not {images.dtype} {list(images.shape)}")
    if images.shape[1:3] != (image_size, image_size):
        raise InputError(f"{path}: images are {images.shape[1]}×{images.shape[2]} but the run needs {image_size}×{image_size}")
    return torch.from_numpy(images)
