"""Where a run loses mIOU: its held-out decomposition scored object by object (the visible objects, each
matched to a slot as mIOU matches it: pyro_objects.metrics) and slot by slot, in five markdown tables:

    python -m pyro_objects.tools.failures RUN_OR_PRETRAINED --data DIR --n 1000 --batch 100 --device cpu

    the loss     1 − mIOU split exactly into the objects missed (matched modal IoU < 0.1: their whole 1 − IoU)
                 and, of those found, false positives on other objects and on the ground and false negatives
                 given to another slot or left to the background, each over the object's union, summed over
                 objects and divided by their number
    by object    by visible pixels, fraction of the amodal mask hidden, depth rank (nearest, between, back),
                 objects in the image: mIOU, missed, IoU of those found, precision, recall, share of the loss
    slots        per image, by objects in the image: slots used (α > 0.3 on 10 pixels or more), copies (a used
                 slot whose amodal mask has IoU > 0.5 with an object that a better-matching slot draws), floor
                 slots (used, amodal IoU < 0.1 with every object), objects missed
    α threshold  mIOU with the predicted masks at α > 0.1 … 0.9 (the metric's is 0.3)
    found masks  precision, recall, median predicted / true pixels of the found objects' modal masks

DIR: a cache of held-out images with ground truth (`pyro-objects data make DATASET --n 0 --n-eval N --out
DIR`); its first --n are scored. Without it they are generated: the split `evaluate` scores.
"""
import argparse

import torch

from .. import data as datasets
from .. import metrics
from ..errors import InputError
from ..evaluate import decompose_batches
from ..report import fmt
from ..runs import load_run

MISSED = 0.1   # a matched modal IoU below this is a missed object
USED_PX = 10   # a slot is used where α > THRESHOLD on at least this many pixels
COPY = 0.5     # amodal IoU above which a slot draws an object
FLOOR = 0.1    # amodal IoU below which, with every object, a used slot draws none
SWEEP = (0.1, metrics.THRESHOLD, 0.5, 0.7, 0.9)
LOSS = {"fp_objects": "found: FP on other objects", "fp_ground": "found: FP on ground",
        "fn_slot": "found: FN to another slot", "fn_background": "found: FN to background"}
PIXEL_BINS = (30, 100, 300, 600, 1000)


def records(amodal, count, alpha, depth):
    """Records of each visible object and each image of one batch.

    amodal: bool [B, K, H, W] back to front, count: int [B], alpha: [B, J, H, W], depth: [B, J] ->
        objects: dict of float64 [M] over the M visible objects: count (objects in its image), visible
            (pixels), hidden (fraction of its amodal mask), from_front (0 nearest), back (farthest of two or
            more), iou (matched modal IoU), missed, precision, recall, ratio (predicted / true pixels), and
            LOSS's keys (pixels over the union; zero for a missed object: with its 1 − iou they add to 1 − iou);
        images: dict of int64 [B]: count, used, copies, floor (slots), missed (objects)
    """
    t_amodal, truth, t_seg = metrics.truth_masks(amodal.bool(), count)
    p_amodal, p_modal, p_seg = metrics.predicted_masks(alpha.float(), depth.float())
    K = amodal.shape[1]
    visible = truth.flatten(2).any(2)                                                  # [B, K]
    match = metrics.match_all(metrics.iou_table(truth, p_modal), visible)             # [B, K], -1 none
    pred = p_modal[torch.arange(len(count))[:, None], match.clamp(min=0)]              # [B, K, H, W]
    pred &= (match >= 0)[:, :, None, None]                                             # no slot: empty

    def px(m):  # bool [B, K, H, W] -> float64 [B, K]
        return m.flatten(2).sum(2).double()

    ground, drawn = (t_seg < 0)[:, None], (p_seg >= 0)[:, None]
    fp, fn = pred & ~truth, truth & ~pred
    inter, t_px, p_px = px(truth & pred), px(truth), px(pred)
    union = (t_px + p_px - inter).clamp(min=1)
    iou, missed = inter / union, inter / union < MISSED
    found = (~missed).double() / union  # what each pixel of a found object's errors costs its IoU
    k = torch.arange(K)[None].expand_as(visible)
    from_front = count[:, None] - 1 - k
    objects = {"count": count[:, None].expand_as(k), "visible": t_px, "hidden": 1 - t_px / px(t_amodal),
               "from_front": from_front, "back": (k == 0) & (from_front > 0), "iou": iou, "missed": missed,
               "precision": inter / p_px, "recall": inter / t_px, "ratio": p_px / t_px,
               "fp_objects": px(fp & ~ground) * found, "fp_ground": px(fp & ground) * found,
               "fn_slot": px(fn & drawn) * found, "fn_background": px(fn & ~drawn) * found}
    objects = {name: v[visible].double() for name, v in objects.items()}  # invisible ones' NaNs go

    used = p_amodal.flatten(2).sum(2) >= USED_PX                                      # [B, J]
    amodal_iou = metrics.iou_table(t_amodal, p_amodal)                                 # [B, K, J], 0 if absent
    best = amodal_iou.argmax(2, keepdim=True)                                          # [B, K, 1]
    slots = torch.arange(alpha.shape[1])[None, None]
    copy = ((amodal_iou > COPY) & (slots != best)).any(1) & used
    floor = used & (amodal_iou.amax(1) < FLOOR)
    images = {"count": count.long(), "used": used.sum(1), "copies": copy.sum(1), "floor": floor.sum(1),
              "missed": (missed & visible).sum(1)}
    return objects, images


def analyse(model, guide, data, batch_size=100, device="cpu"):
    """Records of every image of data (a Dataset with ground truth) -> (objects, images) as records()
    gives them for all, and {threshold: mIOU} over SWEEP's α thresholds."""
    parts, sweep = [], {t: [] for t in SWEEP}
    for i, pred in enumerate(decompose_batches(model, guide, data.images, batch_size, device)):
        s = slice(i * batch_size, (i + 1) * batch_size)
        amodal, count = data.amodal[s].cpu(), data.count[s].cpu()
        parts.append(records(amodal, count, pred["alpha"], pred["depth"]))
        for t in SWEEP:
            iou = metrics.per_image(amodal, count, pred["alpha"], pred["depth"], threshold=t)["modal_iou"]
            sweep[t].append(iou[~iou.isnan()])
    objects, images = ({k: torch.cat([p[n][k] for p in parts]) for k in parts[0][n]} for n in (0, 1))
    return objects, images, {t: float(torch.cat(v).mean()) for t, v in sweep.items()}


def _pct(x):
    return fmt(100 * x, "{:.1f}%")


def _mean(v):
    return float(v.double().mean()) if len(v) else float("nan")


def _head(*names):
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]


def _row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def groups(objects):
    """[(title, [(label, bool [M])])]: the groupings of the by-object tables."""
    vis, hidden, ff, back = (objects[k] for k in ("visible", "hidden", "from_front", "back"))
    back = back.bool()
    edges = (0,) + PIXEL_BINS + (float("inf"),)
    pixels = [(f"<{hi}" if lo == 0 else f"{lo}+" if hi == float("inf") else f"{lo}–{hi}", (vis >= lo) & (vis < hi))
              for lo, hi in zip(edges, edges[1:])]
    occluded = [("0", hidden == 0), ("0–25%", (hidden > 0) & (hidden < .25)),
                ("25–50%", (hidden >= .25) & (hidden < .5)), ("50%+", hidden >= .5)]
    rank = [("nearest", ff == 0), ("between", (ff > 0) & ~back), ("back", back)]
    counts = [(str(int(c)), objects["count"] == c) for c in objects["count"].unique()]
    return [("visible pixels", pixels), ("fraction hidden by nearer objects", occluded), ("depth rank", rank),
            ("objects in the image", counts)]


def tables(objects, images, sweep):
    """Markdown of the five tables from analyse()'s output."""
    n, iou, missed = len(objects["iou"]), objects["iou"], objects["missed"].bool()
    loss = float((1 - iou).sum())
    split = (loss, (1 - iou)[missed].sum(), *(objects[k].sum() for k in LOSS))  # over n, the rest add to the first
    lines = [f"{len(images['count'])} images, {n} objects scored, mIOU {_mean(iou):.4f}, "
             f"{int(missed.sum())} missed ({_pct(_mean(missed))})", "", "### The loss: 1 − mIOU, split", "",
             *_head("objects", "1 − mIOU", "missed objects", *LOSS.values()),
             _row(n, *(f"{float(x) / n:.4f}" for x in split))]
    for title, rows in groups(objects):
        lines += ["", f"### By {title}", "", *_head("group", "objects", "mIOU", "missed", "IoU of found", "precision",
                                                    "recall", "share of the loss")]
        for label, g in rows:
            o = {k: v[g] for k, v in objects.items()}
            found = {k: v[~o["missed"].bool()] for k, v in o.items()}
            lines.append(_row(label, int(g.sum()), fmt(_mean(o["iou"])), _pct(_mean(o["missed"])),
                              *(fmt(_mean(found[k])) for k in ("iou", "precision", "recall")),
                              _pct(float((1 - o["iou"]).sum()) / loss)))
    lines += ["", "### Slots, by objects in the image", "",
              f"used: α > {metrics.THRESHOLD} on ≥ {USED_PX} px; copy: a used slot whose amodal mask has IoU > "
              f"{COPY} with an object that a better-matching slot already draws; floor: a used slot of amodal IoU < "
              f"{FLOOR} with every object", "", *_head("objects in the image", "images", "used slots / image",
                                                       "copies / image", "images with a copy", "floor slots / image",
                                                       "missed / image")]
    count = images["count"]
    for label, g in [(str(int(c)), count == c) for c in count.unique()] + [("all", count >= 0)]:
        im = {k: v[g] for k, v in images.items()}
        lines.append(_row(label, int(g.sum()), f"{_mean(im['used']):.2f}", f"{_mean(im['copies']):.3f}",
                          _pct(_mean(im["copies"] > 0)), *(f"{_mean(im[k]):.3f}" for k in ("floor", "missed"))))
    lines += ["", "### mIOU at other α thresholds (predicted masks only)", "", *_head("α >", "mIOU"),
              *(_row(f"{t}{' (the metric)' if t == metrics.THRESHOLD else ''}", f"{m:.4f}") for t, m in sweep.items())]
    found = {k: v[~missed] for k, v in objects.items()}
    ratio = found["ratio"]  # [found objects]
    lines += ["", f"### Found objects' modal masks (IoU ≥ {MISSED})", "",
              *_head("objects", "precision", "recall", "predicted / true px (median)", "predicted larger than truth"),
              _row(len(ratio), fmt(_mean(found["precision"])), fmt(_mean(found["recall"])),
                   fmt(float(ratio.quantile(.5)) if len(ratio) else float("nan")), _pct(_mean(ratio > 1)))]
    return "\n".join(lines)


def table(run_dir, data=None, n=1000, batch_size=100, device="cpu"):
    """The tables for a run (or pretrained:NAME) on n held-out images of its dataset: from cache data, or generated."""
    cfg, model, guide, _ = load_run(run_dir, device)
    held_out = datasets.load(cfg.dataset, "eval", n, device=device, cfg=cfg, cache=data)
    if not held_out.has_truth:
        raise InputError(f"the {held_out.name!r} images have no ground-truth object masks")
    objects, images, sweep = analyse(model, guide, held_out, batch_size, device)
    source = data or f"generated held-out {cfg.dataset}"
    return f"## Where {run_dir} loses mIOU ({source})\n\n" + tables(objects, images, sweep)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory or pretrained:NAME")
    parser.add_argument("--data", help="a cache of held-out images (default: generated)")
    parser.add_argument("--n", type=int, default=1000, help="held-out images scored")
    parser.add_argument("--batch", type=int, default=100, help="images decomposed at a time")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.n < 1 or args.batch < 1:
        parser.error("--n and --batch must be at least 1")
    try:
        print(table(args.run_dir, args.data, args.n, args.batch, args.device))
    except InputError as e:
        parser.exit(1, f"failures.py: {e}\n")


if __name__ == "__main__":
    main()
