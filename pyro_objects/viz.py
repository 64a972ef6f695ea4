"""Figures: decompositions (like the paper's Fig. 4), generated scenes (Fig. 3),
interpolations (Fig. 5), DPA against overlap (Fig. 6), ground truth and time to quality."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from .compositor import modal_segmentation
from .metrics import DECOMPOSITION, MIN_OVERLAP
from .files import atomic_write

SLOT_COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.6, 0.9], [0.2, 0.8, 0.2], [0.95, 0.75, 0.1],
                             [0.7, 0.3, 0.9], [0.9, 0.5, 0.7], [0.4, 0.9, 0.9], [0.6, 0.4, 0.2]])
FIGURE_MAX = 256  # images a figure draws at most: Agg draws no side over 2^16 pixels (595 inches at 110 dpi)


def checkerboard(n, square=8):
    """[3, n, n] grey checkerboard, to show transparency."""
    i = torch.arange(n) // square
    board = ((i[:, None] + i[None, :]) % 2).float() * 0.25 + 0.6
    return board.expand(3, n, n)


def over_checkerboard(rgb, alpha):
    """rgb [..., 3, N, N], alpha [..., N, N] -> [..., 3, N, N]"""
    a = alpha.unsqueeze(-3)
    return a * rgb + (1 - a) * checkerboard(rgb.shape[-1]).to(rgb)


def paint_segmentation(seg):
    """[B, N, N] slot indices (-1 background) -> [B, 3, N, N]"""
    colours = torch.cat([torch.zeros(1, 3), SLOT_COLOURS]).to(seg.device)
    return colours[(seg + 1) % len(colours)].permute(0, 3, 1, 2)


def _show(ax, image, title=None):
    ax.imshow(image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def save(fig, path):
    """Write fig to path (atomically; the format from its suffix) and close it. -> fig"""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format=path.suffix[1:] or "png"))
    plt.close(fig)
    return fig


def decomposition_figure(x, parts, path=None):
    """One row per image: input, reconstruction, modal segmentation, then each object
    over a checkerboard, nearest first. x: [B, 3, N, N]; parts: from decompose(). A peer
    model's parts (alpha and recon alone): the input under each mask, in slot order."""
    B, J = parts["alpha"].shape[:2]
    fig, axes = plt.subplots(B, 3 + J, figsize=(1.3 * (3 + J), 1.3 * B), squeeze=False)
    depth = parts.get("depth")
    objects = over_checkerboard(parts.get("rgb", x[:, None].expand(-1, J, -1, -1, -1)), parts["alpha"])
    segmentation = parts["segmentation"] if "segmentation" in parts else parts["alpha"].argmax(1)
    for b in range(B):
        _show(axes[b, 0], x[b], "input" if b == 0 else None)
        _show(axes[b, 1], parts["recon"][b], "reconstruction" if b == 0 else None)
        _show(axes[b, 2], paint_segmentation(segmentation[b:b + 1])[0], "segmentation" if b == 0 else None)
        for k, j in enumerate(range(J) if depth is None else depth[b].argsort().tolist()):
            title = "slot masks" if depth is None else "object 1 (near→far)"
            _show(axes[b, 3 + k], objects[b, j], title if b == 0 and k == 0 else None)
            axes[b, 3 + k].set_xlabel(f"slot {j}" if depth is None else f"slot {j}, d={depth[b, j]:.2f}", fontsize=6)
    return save(fig, path)


def scenes_figure(scenes, path=None, objects=None, columns=8):
    """A grid of generated scenes [B, 3, N, N]; with objects = (rgb [B, J, 3, N, N], alpha, depth),
    beneath each scene its modal segmentation and then its objects over a checkerboard,
    nearest first: the paper's Fig. 3."""
    B = scenes.shape[0]
    J = 0 if objects is None else objects[1].shape[1]
    columns = min(columns, B)
    rows_per = 1 if objects is None else 2 + J  # scene, segmentation, objects
    rows = -(-B // columns) * rows_per
    fig, axes = plt.subplots(rows, columns, figsize=(1.1 * columns, 1.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if objects is not None:
        rgb, alpha, depth = objects
        segmentation = paint_segmentation(modal_segmentation(alpha, depth))
    for b in range(B):
        r, c = (b // columns) * rows_per, b % columns
        axes[r, c].axis("on")
        _show(axes[r, c], scenes[b], "scene" if b == 0 and J else None)
        if objects is not None:
            axes[r + 1, c].axis("on")
            _show(axes[r + 1, c], segmentation[b], "segmentation" if b == 0 else None)
            for k, j in enumerate(depth[b].argsort().tolist()):
                axes[r + 2 + k, c].axis("on")
                _show(axes[r + 2 + k, c], over_checkerboard(rgb[b, j], alpha[b, j]),
                      "objects, near→far" if b == 0 and k == 0 else None)
                axes[r + 2 + k, c].set_xlabel(f"slot {j}, d={depth[b, j]:.2f}", fontsize=5)
    return save(fig, path)


def samples_figure(out, path=None):
    """scenes_figure() of a model output (x_mean, placed, d): each scene above its objects."""
    placed = out["placed"]
    return scenes_figure(out["x_mean"], path, objects=(placed[:, :, :3], placed[:, :, 3], out["d"]))


def rows_figure(rows, path=None):
    """One labelled row of images per entry: {label: [K, 3, N, N]}. Interpolations (the
    paper's Fig. 5) and scenes before and after an intervention."""
    K = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), K, figsize=(1.1 * K, 1.2 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows.items()):
        for k in range(K):
            if k < len(images):
                _show(axes[i, k], images[k])
            else:
                axes[i, k].axis("off")
        axes[i, 0].set_ylabel(label, fontsize=7)
    return save(fig, path)


def save_gif(frames, path, scale=4, ms=250):
    """frames [K, 3, N, N] in [0, 1] -> an animated GIF, each pixel drawn scale×scale, looping."""
    arrays = (frames.detach().cpu().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
              for a in arrays]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: images[0].save(p, format="GIF", save_all=True, append_images=images[1:],
                                                duration=ms, loop=0))


def truth_figure(images, amodal, count, path=None):
    """Ground truth, one column per image: the image, its modal segmentation, then each
    object's amodal mask (hidden parts included), back to front.
    images uint8 [B, N, N, 3]; amodal bool [B, K, N, N] back to front; count [B]."""
    B, K = amodal.shape[:2]
    visible = torch.stack([amodal[:, k] & ~amodal[:, k + 1:].any(1) for k in range(K)], 1)
    seg = torch.where(visible.any(1), visible.int().argmax(1), torch.full_like(visible[:, 0], -1, dtype=torch.long))
    fig, axes = plt.subplots(2 + K, B, figsize=(1.1 * B, 1.1 * (2 + K)), squeeze=False)
    for b in range(B):
        _show(axes[0, b], images[b].permute(2, 0, 1).float() / 255, "image" if b == 0 else None)
        _show(axes[1, b], paint_segmentation(seg[b:b + 1])[0], "modal" if b == 0 else None)
        for k in range(K):
            if k >= int(count[b]):  # an empty slot
                axes[2 + k, b].axis("off")
                continue
            colour = SLOT_COLOURS[k % len(SLOT_COLOURS), :, None, None].expand(3, *amodal.shape[-2:])
            _show(axes[2 + k, b], over_checkerboard(colour, amodal[b, k].float()),
                  "amodal, back first" if b == 0 and k == 0 else None)
    return save(fig, path)


def quality_figure(rows, paper, path=None):
    """Time to quality: the decomposition scores of quality.csv's rows against the minutes
    trained, the paper's numbers as dashed lines in the same colours."""
    minutes = [float(r["minutes"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    for name in DECOMPOSITION:
        values = [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in rows]
        line, = left.plot(minutes, values, marker=".", label=name)
        if name in paper:
            left.axhline(paper[name], color=line.get_color(), ls="--", lw=0.8)
    left.set_ylim(0, 1.02)
    left.set_xlabel("minutes trained")
    left.legend(fontsize=7, loc="lower right")
    left.set_title("decomposition (dashed: the paper's)", fontsize=9)
    right.plot(minutes, [float(r["MSE"]) for r in rows], marker=".", color="black")
    if "MSE" in paper:
        right.axhline(paper["MSE"], color="black", ls="--", lw=0.8)
    right.set_yscale("log")
    right.set_xlabel("minutes trained")
    right.set_title("reconstruction MSE", fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def runs_quality_figure(runs, targets, path=None):
    """Time to quality over several runs: a panel a target, each run's checks of its metric against
    the minutes trained, the target dashed. runs: [(name, [{"minutes", metric: value}])];
    targets: [(metric, value)]."""
    fig, axes = plt.subplots(1, len(targets), figsize=(3.3 * len(targets), 2.8), squeeze=False)
    for ax, (metric, target) in zip(axes[0], targets):
        for name, checks in runs:
            scored = [c for c in checks if metric in c]
            ax.plot([c["minutes"] for c in scored], [c[metric] for c in scored], marker=".", lw=1, label=name)
        ax.axhline(target, color="black", ls="--", lw=0.8)
        if metric == "MSE":
            ax.set_yscale("log")
        ax.set_xlabel("minutes from the start")
        ax.set_title(f"{metric} (dashed: {target:g})", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save(fig, path)


def dpa_figure(curve, path=None, title=""):  # Fig. 6: DPA against the minimum overlap of a pair
    """curve: {"min_overlap", "dpa", "pairs"} lists -> a figure (a PNG at path)."""
    x = np.asarray(curve["min_overlap"])
    y = np.array([np.nan if v is None else v for v in curve["dpa"]], dtype=float)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(x, y, marker=".")
    ax.axvline(MIN_OVERLAP, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("minimum overlap of a pair's amodal masks (pixels)")
    ax.set_ylabel("DPA")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title} depth-ordering accuracy", fontsize=9)
    return save(fig, path)
