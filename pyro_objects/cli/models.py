"""What a trained run does: sample, interpolate, decompose."""
import re
from pathlib import Path

import click
import numpy as np
import torch

from .. import data as datasets
from .. import interventions
from ..data.folder import SUFFIXES, image_files, load_image
from ..decompose import decompose
from ..errors import InputError
from ..evaluate import load_any, predict
from ..files import check_output
from ..interpolate import FACTORS, interpolate
from ..runs import has_scene_prior, load_run, output_path
from ..score import save_npz
from ..viz import FIGURE_MAX, decomposition_figure, rows_figure, samples_figure, save_gif, scenes_figure
from . import main
from .common import pick_device


@main.command("sample")
@click.argument("run_dir", type=click.Path())
@click.option("--n", type=click.IntRange(min=1, max=FIGURE_MAX), default=64, show_default=True, help="Scenes to generate.")
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
    A generative peer's run (`baseline train vae` or `monet`) draws its scenes alone.
    """
    out = check_output(out or output_path(run_dir, "figures", "samples.png"), "png")
    before = check_output(out.with_name(f"{out.stem}-before{out.suffix}"), "png") if placements or front is not None else None
    requests = [parse_place(p) for p in placements]
    device = pick_device(device)
    cfg, model, guide, state = load_any(run_dir, device)
    torch.manual_seed(seed)
    if guide is None:  # a peer: no θ or d to intervene on, and no objects drawn alone
        sample_peer(model, state["baseline"], n, out, intervene=before is not None)
        return
    scenes, trace = interventions.sample(model, n, sigma=state["sigma"], hyperprior=has_scene_prior(state))
    if before is not None:
        samples_figure(scenes, before)
        theta = interventions.one_hot_at(trace.nodes["theta"]["value"], requests, cfg.image_size) if requests else None
        d = interventions.nearest(trace.nodes["d"]["value"], front, cfg.depth_softness) if front is not None else None
        scenes = interventions.intervene(model, trace, theta=theta, d=d)
    samples_figure(scenes, out)
    click.echo(f"{n} scenes -> {out}")


def sample_peer(model, name, n, out, intervene=False):
    """n scenes of a peer model that generates (the VAE, MONet) -> a grid in out."""
    if not hasattr(model, "sample"):
        raise InputError(f"the {name} baseline does not generate images: `decompose` and `evaluate` read its run")
    if intervene:
        raise InputError(f"--place and --front move our model's objects; the {name} baseline has no θ or d to set")
    with torch.no_grad():
        scenes_figure(model.sample(n).cpu(), out)
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
@click.option("--steps", type=click.IntRange(min=2, max=FIGURE_MAX), default=8, show_default=True, help="Scenes on the way, both ends included.")
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
    out = Path(out or output_path(run_dir, "figures", f"interpolate-{factor}.png"))
    out = check_output(out, "gif" if out.suffix.lower() == ".gif" else "png", inputs=[image_a, image_b])
    device = pick_device(device)
    cfg, model, guide, state = load_run(run_dir, device)
    if not has_scene_prior(state):
        raise InputError(f"{run_dir} has no trained scene prior (stage 2): train it to the end without --no-hyperprior")
    x_a, x_b = (read_image(spec, cfg.image_size).to(device) for spec in (image_a, image_b))
    frames = interpolate(model, guide, x_a, x_b, factor, steps)["x_mean"]
    if out.suffix.lower() == ".gif":
        save_gif(frames, out)
    else:
        rows_figure({f"{factor}: a → b": torch.cat([x_a[None], frames, x_b[None]])}, out)
    click.echo(f"{steps} steps ({factor}) -> {out}")


def read_image(spec, image_size):
    """One image [3, N, N] in [0, 1] from 'PATH.png' / 'PATH.jpg', or 'PATH.npz:I' (image I of 'images')."""
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
@click.option("--input", "input_path",
              help="A PNG or JPEG file, a folder or glob of them (each centre-cropped to a square and resized), "
                   "or an .npz with 'images', uint8 [N, H, W, 3] (default: held-out images of the run's dataset).")
@click.option("--n", type=click.IntRange(min=1), default=8, show_default=True,
              help=f"Images in the figure (at most {FIGURE_MAX}); without --input, the held-out images --output exports.")
@click.option("--out", type=click.Path(dir_okay=False), help="PNG (default: RUN_DIR/figures/decompose.png).")
@click.option("--output", "pred_path", type=click.Path(dir_okay=False),
              help="Also export every input image's decomposition to this .npz (the format `score` reads).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True, help="Images per batch for --output.")
@click.option("--device")
def decompose_command(run_dir, input_path, n, out, pred_path, batch_size, device):
    """Decompose images into objects, depths and amodal masks (a figure like the paper's Fig. 4).

    With --output PRED.npz, every image (of --input, or the --n held-out ones) is exported:
    alpha float [N, J, H, W] (each slot's placed amodal alpha), depth float [N, J] (larger is
    farther), theta int [N, J, 2] (row, col of each slot's argmax pixel), recon float [N, H, W, 3] in [0, 1].
    A baseline's run (`pyro-objects baseline train`) exports alpha (its slots' modal masks) and recon alone.
    """
    if n > FIGURE_MAX and not pred_path:
        raise InputError(f"--n {n}: the figure draws at most {FIGURE_MAX} images; --output PRED.npz exports more")
    out = check_output(out or output_path(run_dir, "figures", "decompose.png"), "png", inputs=[input_path])
    pred_path = check_output(pred_path, "npz", inputs=[input_path]) if pred_path else None
    device = pick_device(device)
    cfg, model, guide, _ = load_any(run_dir, device)
    torch.manual_seed(0)  # Slot Attention draws its first slots at random: the same file every time
    images = read_inputs(input_path, cfg.image_size) if input_path else \
        datasets.load(cfg.dataset, "eval", n, device=device, cfg=cfg).images
    x = datasets.to_float(images[:min(n, FIGURE_MAX)].to(device))
    decomposition_figure(x, decompose(model, guide, x), out)
    click.echo(f"{len(x)} images -> {out}")
    if pred_path:
        save_npz(pred_path, predict(model, guide, images.cpu(), batch_size, device))
        click.echo(f"{len(images)} decompositions -> {pred_path}")


def read_inputs(spec, image_size):
    """uint8 [N, H, W, 3] from an .npz's 'images', or from one PNG / JPEG file or a folder or glob of them,
    each centre-cropped to a square and resized to the run's size."""
    if spec.lower().endswith(".npz"):
        return read_images(spec, image_size)
    path = Path(spec)
    if path.suffix.lower() in SUFFIXES and not any(c in spec for c in "*?["):
        if not path.is_file():
            raise InputError(f"{spec} does not exist")
        files = [path]
    else:
        files = image_files(spec)
    images = [load_image(f, image_size) for f in files]
    bad = [f.name for f, image in zip(files, images) if image is None]
    if bad:
        raise InputError(f"{bad[0]} cannot be read as an image" + (f" (nor can {len(bad) - 1} more)" if len(bad) > 1 else ""))
    return torch.from_numpy(np.stack(images))


def read_images(path, image_size):
    """uint8 [N, H, W, 3] from an .npz's 'images', checked against the run's image size."""
    images = datasets.read_npz(path, ("images",))["images"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"{path}: 'images' must be uint8 [N, H, W, 3], not {images.dtype} {list(images.shape)}")
    if len(images) == 0:
        raise InputError(f"{path}: 'images' holds no images")
    if images.shape[1:3] != (image_size, image_size):
        raise InputError(f"{path}: images are {images.shape[1]}×{images.shape[2]} but the run needs {image_size}×{image_size}")
    return torch.from_numpy(images)
