"""Where one trained model decomposes better than another: the modal IoU of each ground-truth
object, binned by the share of its whole (amodal) mask that shows, for two runs on the same
held-out images; and each model's reconstruction error on object and on background pixels.

    python examples/compare_by_visibility.py RUN_A RUN_B [--n 1000] [--data DIR] [--device cpu]

Either run may be ours or a peer's (`pyro-objects baseline train`); both must be of one dataset.
The images are the first --n held-out ones of the dataset's generator, or of the cache --data
(`pyro-objects data make`). Each object's IoU is the one mIOU averages (metrics.per_image), so the
table's last row is each run's mIOU on these images.
"""
import argparse

import torch

from pyro_objects import data as datasets
from pyro_objects import metrics
from pyro_objects.errors import InputError
from pyro_objects.evaluate import decompose_batches, load_any

BINS = ((0.0, 0.5, "under half"), (0.5, 0.9, "half to 90%"), (0.9, 1.01, "90% or more"))


def per_object(model, guide, data, batch_size=100, device="cpu"):
    """One run's model and guide (load_any's; guide None for a peer) on a Dataset with ground truth ->
    {"iou": [N, K] (NaN: no visible object there), "shown": [N, K] (visible share of each object's
    whole mask), "mse_objects", "mse_background": [N]}."""
    torch.manual_seed(0)  # a peer's first slots are drawn at random: as evaluate draws them
    out = {"iou": [], "shown": [], "mse_objects": [], "mse_background": []}
    for i, pred in enumerate(decompose_batches(model, guide, data.images, batch_size, device)):
        s = slice(i * batch_size, (i + 1) * batch_size)
        amodal, count, images = data.amodal[s].cpu(), data.count[s].cpu(), data.images[s].cpu()
        scores = metrics.per_image(amodal, count, pred["alpha"], pred.get("depth"))
        whole, modal, _ = metrics.truth_masks(amodal.bool(), count)  # [B, K, H, W] each
        objects = modal.any(1)  # [B, H, W]
        error = ((pred["recon"] - images.float() / 255) ** 2).mean(-1)  # [B, H, W]
        out["iou"].append(scores["modal_iou"])
        out["shown"].append(modal.flatten(2).sum(2) / whole.flatten(2).sum(2).clamp_min(1))
        out["mse_objects"].append((error * objects).sum((1, 2)) / objects.sum((1, 2)).clamp_min(1))
        out["mse_background"].append((error * ~objects).sum((1, 2)) / (~objects).sum((1, 2)).clamp_min(1))
    return {k: torch.cat(v) for k, v in out.items()}


def table(a, b, names=("A", "B")):
    """Two per_object() results of the same images -> a Markdown table, by visible share."""
    scored = ~a["iou"].isnan() & ~b["iou"].isnan()
    lines = [f"| object shown | objects | {names[0]} | {names[1]} |", "|---|---|---|---|"]
    for low, high, label in BINS:
        sel = scored & (a["shown"] >= low) & (a["shown"] < high)
        lines.append(f"| {label} | {int(sel.sum()):,} | {a['iou'][sel].mean():.3f} | {b['iou'][sel].mean():.3f} |")
    lines.append(f"| all | {int(scored.sum()):,} | {a['iou'][scored].mean():.3f} | {b['iou'][scored].mean():.3f} |")
    lines += ["", f"| MSE on | {names[0]} | {names[1]} |", "|---|---|---|"]
    for part, label in (("objects", "object"), ("background", "background")):
        lines.append(f"| {label} pixels | {a['mse_' + part].mean():.2e} | {b['mse_' + part].mean():.2e} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--n", type=int, default=1000, help="held-out images")
    parser.add_argument("--data", help="a dataset cache (pyro-objects data make) to read them from")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        (cfg_a, *run_a), (cfg_b, *run_b) = (load_any(run, args.device)[:3] for run in (args.run_a, args.run_b))
        if cfg_a.dataset != cfg_b.dataset:
            raise InputError(f"the runs are of {cfg_a.dataset} and {cfg_b.dataset}, not of one dataset")
        data = datasets.load(cfg_a.dataset, "eval", args.n, cfg=cfg_a, cache=args.data)
        a, b = (per_object(*run, data, device=args.device) for run in (run_a, run_b))
    except InputError as e:
        parser.exit(1, f"compare_by_visibility.py: {e}\n")
    print(table(a, b, (args.run_a, args.run_b)))


if __name__ == "__main__":
    main()
