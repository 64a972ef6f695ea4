"""train, sample, interpolate and decompose."""
import os
import re
from pathlib import Path

import click
import numpy as np
import torch

from pyro_objects import data as datasets
from pyro_objects import interventions
from pyro_objects.config import LOSS_WEIGHTS, config_for, parse_settings, quick
from pyro_objects.decompose import decompose
from pyro_objects.errors import InputError
from pyro_objects.interpolate import FACTORS, interpolate
from pyro_objects.runs import load_run
from pyro_objects.train import has_scene_prior, parse_duration, train
from pyro_objects.viz import decomposition_figure, rows_figure, samples_figure, save_gif

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
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Adam's learning rate (default: the config's, 5e-4 as in App. B); with --resume, "
                   "the rate to go on with. Either way the config's lr_decay_epochs still step it down.")
@click.option("--device", help="cpu or cuda (default: cuda if there is one).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run directory (default: runs/DATASET).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="bf16: networks under bf16 autocast.")
@click.option("--compile", "compiled", is_flag=True, help="torch.compile the convolutional networks.")
@click.option("--channels-last", is_flag=True,
              help="Convolutional networks in channels_last layout. With bf16 and --compile, the fastest at large "
                   "batches (docs/PERFORMANCE.md).")
@click.option("--no-cuda-graphs", is_flag=True,
              help="Launch every kernel of a step from Python instead of replaying the step as a CUDA graph "
                   "(the default on one GPU: the same steps, about twice as fast at batch 100).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Set any config field (pyro_objects/config.py) of a new run, e.g. --set beta_z=2000 "
                   "--set alpha_penalty=1e6; repeat for several. With --resume, only the loss weights "
                   f"({', '.join(LOSS_WEIGHTS)}).")
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--time-budget", help="Stop cleanly, with a checkpoint, before this much time: 90s, 9m, 1h.")
@click.option("--no-hyperprior", is_flag=True,
              help="Skip stage 2 (the scene prior over y): the ablation of Table 2; recorded as hyperprior_epochs 0.")
@click.option("--scene-prior", "scene_prior_epochs", type=click.IntRange(min=1), metavar="EPOCHS",
              help="With --resume: end the run with EPOCHS epochs of stage 2 alone, fitting the scene prior to a "
                   "run stopped in stage 1 (Table 2); --n-train may set the images an epoch.")
@click.option("--data", "cache", type=click.Path(file_okay=False),
              help="Read the training images from this cache (made by `pyro-objects data make`) instead of generating them.")
@click.option("--eval-every", type=click.IntRange(min=1), metavar="STEPS",
              help="Score 500 held-out images every STEPS steps into RUN/quality.csv and figures/quality.png "
                   "against the minutes trained: time to quality.")
def train_command(dataset, is_quick, epochs, batch_size, n_train, lr, device, run_dir, seed, precision, compiled,
                  channels_last, no_cuda_graphs, settings, resume, time_budget, no_hyperprior, scene_prior_epochs, cache, eval_every):
    """Train on DATASET: polygons, multi-dsprites, clevr3, clevr5, clevr5-vbg, or folder:PATH.

    Stage 1 trains the decoders and the encoder; stage 2, the last hyperprior_epochs epochs
    (never the first epoch), fits the scene prior ζ, ξ and Q(y) to the posterior modes."""
    cfg = quick(config_for(dataset)) if is_quick else config_for(dataset)
    changes = {"epochs": epochs, "batch_size": batch_size, "n_train": n_train, "precision": precision,
               "compile": compiled, "channels_last": channels_last}
    changes = {k: v for k, v in changes.items() if v}
    if scene_prior_epochs and not resume:
        raise InputError("--scene-prior goes on from a trained run: give it with --resume")
    if resume:
        fixed = {"--epochs": epochs, "--batch-size": batch_size, "--n-train": None if scene_prior_epochs else n_train,
                 "--precision": precision, "--compile": compiled, "--channels-last": channels_last,
                 "--no-hyperprior": no_hyperprior, "--data": cache}
        given = [name for name, value in fixed.items() if value]
        if given:
            raise InputError(f"{', '.join(given)} cannot change a run that goes on with --resume: it keeps its own "
                             "config (--lr, --time-budget, --eval-every, --device, --set of loss weights, and "
                             "--scene-prior with --n-train can change)")
    if cache:
        changes["cache"] = str(Path(cache).resolve())
    if no_hyperprior:
        changes["hyperprior_epochs"] = 0
    if resume:
        weights = parse_settings(cfg, settings)  # train() takes only loss weights here
    else:
        weights, cfg = None, cfg.with_settings(settings)
    cfg = cfg.replace(**changes)
    run_dir = Path(run_dir or f"runs/{Path(dataset.split(':')[-1]).name}{'-quick' if is_quick else ''}")
    budget = parse_duration(time_budget) if time_budget else None
    device = pick_device(device)
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1  # launched by torchrun: one process per GPU
    if distributed:
        device = join_process_group(device)
    state = train(cfg, run_dir, device=device, seed=seed, resume=resume, time_budget=budget, eval_every=eval_every,
                  lr=lr, scene_prior_epochs=scene_prior_epochs, n_train=n_train,
                  cuda_graphs=False if no_cuda_graphs else None, weights=weights)
    if distributed:
        torch.distributed.destroy_process_group()
    click.echo(f"{run_dir}: epoch {state['epoch']}/{state['config']['epochs']}, step {state['step']}; "
               f"figures in {run_dir / 'figures'}")


@main.command("sample")
@click.argument("run_dir", type=click.Path())
@click.option("--n", type=int, default=64, show_default=True, help="Scenes to generate.")
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: RUN_DIR/figures/samples.png).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--place", "placements", multiple=True, metavar="J:R,C",
              help="Intervene: put slot J's centre at row R, column C in every scene, e.g. 0:20,30. Repeatable.")
@click.option("--front", type=int, metavar="J", help="Intervene: bring slot J in front of the other objects.")
@click.option("--device")
def sample_command(run_dir, n, out, seed, placements, front, device):
    """Generate scenes from a trained run: each scene above its segmentation and its objects
    (nearest first), like the paper's Fig. 3. A run that finished stage 2 samples y, then
    positions, appearances and depths from the scene prior; one trained with --no-hyperprior
    (or stopped before stage 2) samples z and logit d from N(0, I) and θ uniformly.

    With --place or --front the same scenes are drawn again under pyro.poutine.do on θ or d
    (every other latent as it was); the scenes before the intervention go to OUT-before.png.
    """
    if n < 1:
        raise InputError("--n must be at least 1")
    device = pick_device(device)
    cfg, model, guide, state = load_run(run_dir, device)
    torch.manual_seed(seed)
    scenes, trace = interventions.sample(model, n, sigma=state["sigma"], hyperprior=has_scene_prior(state))
    out = Path(out or Path(run_dir) / "figures" / "samples.png")
    if placements or front is not None:
        samples_figure(scenes, out.with_name(f"{out.stem}-before{out.suffix}"))
        theta = interventions.one_hot_at(trace.nodes["theta"]["value"], [parse_place(p) for p in placements],
                                         cfg.image_size) if placements else None
        d = interventions.nearest(trace.nodes["d"]["value"], front, cfg.depth_softness) if front is not None else None
        scenes = interventions.intervene(model, trace, theta=theta, d=d)
    samples_figure(scenes, out)
    click.echo(f"{n} scenes -> {out}")


def parse_place(text):
    """'J:R,C' -> (J, R, C)"""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"cannot read --place {text!r}: write SLOT:ROW,COL, e.g. 0:20,30")
    return tuple(int(g) for g in m.groups())


@main.command("interpolate")
@click.argument("run_dir", type=click.Path())
@click.option("--a", "image_a", required=True, metavar="IMG",
              help="The first image: a PNG or JPEG file, or FILE.npz:I for image I of the .npz's 'images'.")
@click.option("--b", "image_b", required=True, metavar="IMG", help="The last image, like --a.")
@click.option("--factor", type=click.Choice(FACTORS), default="both", show_default=True,
              help="What moves: position (the first half of y), appearance (the second half), or both.")
@click.option("--steps", type=int, default=8, show_default=True, help="Scenes on the way, both ends included.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="A .png figure or an animated .gif (default: RUN_DIR/figures/interpolate-FACTOR.png).")
@click.option("--device")
def interpolate_command(run_dir, image_a, image_b, factor, steps, out, device):
    """Interpolate between two images in the scene embedding y of a stage-2 run (the paper's Fig. 5).

    Both images are encoded (the guide's modes, then the mean of Q(y)); the chosen half of y
    moves from one to the other and each step is decoded (θ at the argmax of ζ, z and d at
    ξ's means). The figure shows image a, the steps, then image b. Images that are not the
    run's size are centre-cropped and resized.
    """
    device = pick_device(device)
    cfg, model, guide, state = load_run(run_dir, device)
    if not has_scene_prior(state):
        raise InputError(f"{run_dir} has no trained scene prior (stage 2): train it to the end without --no-hyperprior")
    x_a, x_b = (read_image(spec, cfg.image_size).to(device) for spec in (image_a, image_b))
    frames = interpolate(model, guide, x_a, x_b, factor, steps)["x_mean"]
    out = Path(out or Path(run_dir) / "figures" / f"interpolate-{factor}.png")
    if out.suffix.lower() == ".gif":
        save_gif(frames, out)
    else:
        rows_figure({f"{factor}: a → b": torch.cat([x_a[None], frames, x_b[None]])}, out)
    click.echo(f"{steps} steps ({factor}) -> {out}")


def read_image(spec, image_size):
    """One image [3, N, N] in [0, 1] from 'PATH.png' / 'PATH.jpg', or 'PATH.npz:I' (image I of 'images')."""
    from pyro_objects.data.folder import load_image
    path, _, index = spec.rpartition(":")
    if path.lower().endswith(".npz") and index.strip().isdigit():
        images = read_images(path, image_size)
        if int(index) >= len(images):
            raise InputError(f"{path} has {len(images)} images: index {index} is out of range")
        return datasets.to_float(images[int(index)][None])[0]
    if not Path(spec).is_file():
        raise InputError(f"{spec} does not exist (give a PNG or JPEG file, or FILE.npz:INDEX)")
    image = load_image(spec, image_size)
    if image is None:
        raise InputError(f"{spec} cannot be read as an image")
    return datasets.to_float(torch.from_numpy(image.copy())[None])[0]


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
    images = datasets.read_npz(path, ("images",))["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"{path}: 'images' must be uint8 [N, H, W, 3], not {images.dtype} {list(images.shape)}")
    if images.shape[1:3] != (image_size, image_size):
        raise InputError(f"{path}: images are {images.shape[1]}×{images.shape[2]} but the run needs {image_size}×{image_size}")
    return torch.from_numpy(images)
