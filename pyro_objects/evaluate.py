"""Evaluate a trained run: the paper's Tables 1, 3 and 4 (and FG-ARI) for its dataset.

    RUN/results.json      every number, how many objects, pairs or images it rests on,
                          the metrics skipped and why, and the paper's numbers
    RUN/results.md        the same laid out like the paper's tables, the paper's numbers beside ours
    RUN/results-dpa.png   DPA against the overlap threshold (Fig. 6)

Decomposition metrics (Sec. 5.2) need ground truth; a dataset without it gets MSE
and FID only. Every dataset gets the size of each slot's draws, which shows without
labels a run stuck with one slot drawing several objects (slot_check). Generation
metrics (Sec. 5.1) compare scenes sampled at the config's minimum temperature with
held-out images, and objects drawn alone with single ground-truth objects where the
dataset's generator can render them.
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import data as datasets
from . import fid as fidlib
from . import metrics
from .decompose import decompose
from .errors import InputError
from .runs import atomic_write, load_run

# The paper's numbers (Anciukevičius et al. 2020), to print beside ours: Table 3 (mIOU,
# aIOU, DPA), Table 4 (reconstruction MSE) and Table 1 (full-scene FID).
PAPER = {
    "polygons": {"mIOU": 0.83, "aIOU": 0.90, "DPA": 0.87, "FID": 75.9},
    "clevr3": {"mIOU": 0.84, "aIOU": 0.85, "DPA": 0.92, "MSE": 6.0e-4, "FID": 49.6},
    "clevr5": {"mIOU": 0.78, "aIOU": 0.79, "DPA": 0.74, "MSE": 8.1e-4},
    "clevr5-vbg": {"mIOU": 0.64, "aIOU": 0.65, "DPA": 0.70, "MSE": 7.4e-4, "FID": 83.1},
    "multi-dsprites": {"FID": 66.7},
}

DECOMPOSITION = ("mIOU", "aIOU", "DPA", "FG-ARI")


@torch.no_grad()
def decompose_batches(model, guide, images, batch_size=100, device="cpu", desc="decompose"):
    """Decompose uint8 images [N, H, W, 3] a batch at a time, with a progress bar.

    Yields dicts of CPU tensors: alpha [B, J, H, W] (placed, amodal), depth [B, J] (larger is farther),
    theta int [B, J, 2] (row, col), recon [B, H, W, 3] in [0, 1]
    """
    for i in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        x = datasets.to_float(images[i:i + batch_size].to(device))
        parts = decompose(model, guide, x)
        yield {"alpha": parts["alpha"].cpu(), "depth": parts["depth"].cpu(), "theta": parts["theta"].cpu(),
               "recon": parts["recon"].clamp(0, 1).permute(0, 2, 3, 1).cpu()}


def predict(model, guide, images, batch_size=100, device="cpu"):
    """All of decompose_batches() at once, as numpy arrays (the PRED.npz format)."""
    batches = list(decompose_batches(model, guide, images, batch_size, device))
    dtypes = {"alpha": np.float32, "depth": np.float32, "theta": np.int64, "recon": np.float32}
    return {k: torch.cat([b[k] for b in batches]).numpy().astype(t) for k, t in dtypes.items()}


def save_npz(path, arrays):
    """Write arrays to an .npz atomically (np.savez on an open file keeps the name as given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


# -- generation (Sec. 5.1) ---------------------------------------------------------

def polygon_objects(n, seed, image_size):
    """n ground-truth polygons, each drawn alone over the dataset's black background: uint8 [n, N, N, 3]."""
    from .data import polygons
    g = polygons.generate(-(-n // polygons.OBJECTS), seed, image_size)
    alone = polygons.paint(g["amodal"].reshape(-1, 1, image_size, image_size), g["colour"].reshape(-1, 1, 3))
    return alone[:n]


def dsprites_objects(n, seed, image_size):
    """n ground-truth sprites, each drawn alone over black: uint8 [n, N, N, 3]."""
    from .data import dsprites
    g = dsprites.generate(-(-n // dsprites.OBJECTS[0]), seed, image_size)
    return dsprites.single_objects(g, torch.arange(len(g["count"])))[:n]


def clevr_objects(variant):
    """n ground-truth CLEVR objects, each rendered alone in its scene: uint8 [n, N, N, 3]."""
    from .data import clevr
    return lambda n, seed, image_size: clevr.single_objects(n, seed, variant, image_size)


# Datasets whose generator can draw single ground-truth objects: (renderer, what a generated
# object is drawn over: a colour, or "background", the background generated with its scene).
SINGLE_OBJECTS = {"polygons": (polygon_objects, (0.0, 0.0, 0.0)), "multi-dsprites": (dsprites_objects, (0.0, 0.0, 0.0)),
                  **{v: (clevr_objects(v), "background") for v in ("clevr3", "clevr5", "clevr5-vbg")}}
MIN_OBJECT_PIXELS = 10  # a generated slot counts as an object where its alpha exceeds 0.5 on this many pixels


@torch.no_grad()
def generate(model, cfg, n, batch_size=100, device="cpu", background=None, hyperprior=False):
    """n scenes sampled at the config's minimum temperature (from the scene prior if hyperprior),
    as uint8 [n, N, N, 3]; with a background (an RGB colour, or "background": the scene's own generated
    background) also each non-empty slot drawn alone over it, uint8 [<= n * J, N, N, 3]."""
    scenes, objects = [], []
    for i in tqdm(range(0, n, batch_size), desc="sample", unit="batch", leave=False):
        out = model(n=min(batch_size, n - i), temperature=cfg.min_temperature, hyperprior=hyperprior)
        scenes.append(fidlib.to_uint8(out["x_mean"]).cpu())
        if background is not None:
            rgb, alpha = out["placed"][:, :, :3], out["placed"][:, :, 3:]
            bg = out["x_bg"][:, None] if background == "background" else \
                torch.tensor(background, device=rgb.device)[:, None, None]
            alone = (alpha * rgb + (1 - alpha) * bg).flatten(0, 1)
            drawn = slot_sizes(alpha[:, :, 0], 0.5).flatten() >= MIN_OBJECT_PIXELS  # empty slots are no objects
            objects.append(fidlib.to_uint8(alone[drawn]).cpu())
    return torch.cat(scenes), (torch.cat(objects) if objects else None)


def generation_scores(model, cfg, data, n, split_seed, batch_size=100, device="cpu", hyperprior=False):  # Sec. 5.1
    """FID and KID×100 of generated scenes (and objects alone, where possible) against held-out ones.

    -> (scores {"FID", "KIDx100", ...}, skipped {metric: reason})
    """
    net = fidlib.InceptionFeatures()
    single = SINGLE_OBJECTS.get(data.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(split_seed)
        scenes, objects = generate(model, cfg, n, batch_size, device, single[1] if single else None, hyperprior)
    real = fidlib.features(data.images[:n], net, desc="inception: held-out scenes")
    fake = fidlib.features(scenes, net, desc="inception: generated scenes")
    scores, skipped = fidlib.fid_kid_of_features(real, fake), {}
    scores["FID_images"] = min(n, len(data))
    if single is None:
        reason = f"the {data.name!r} generator cannot draw single ground-truth objects yet"
        skipped.update({"FID objects": reason, "KIDx100 objects": reason})
        return scores, skipped
    m = min(n, len(objects))
    if m < 2:
        skipped.update(dict.fromkeys(["FID objects", "KIDx100 objects"], "the model drew fewer than 2 non-empty objects"))
        return scores, skipped
    truth = single[0](m, split_seed, data.image_size)
    real = fidlib.features(truth, net, desc="inception: ground-truth objects")
    fake = fidlib.features(objects[:m], net, desc="inception: generated objects")
    alone = fidlib.fid_kid_of_features(real, fake)
    scores.update({f"{k} objects": v for k, v in alone.items()})
    scores["FID_objects"] = m
    return scores, skipped


# -- decomposition (Sec. 5.2) and reconstruction (Table 4) -------------------------

SPECK = 1 / 8  # a slot draws specks where its large draws are under this share of the largest slot's (ours)


def slot_sizes(alpha, threshold=metrics.THRESHOLD):
    """Pixels each slot covers in each image: alpha [B, J, N, N] -> [B, J]."""
    return (alpha > threshold).flatten(2).sum(-1)


def slot_check(sizes):  # ours, label-free: docs/RESULTS.md, "How often a run does not decompose"
    """{"pixels_q90": each slot's 90th percentile of pixels covered over the images, "specks": the slots
    whose percentile is under SPECK of the largest}. A speck slot is the sign of a run stuck with one
    slot drawing several objects; the 90th percentile leaves alone a spare slot that images with few
    objects leave empty."""
    q90 = torch.quantile(sizes.float(), 0.9, dim=0).tolist()
    return {"pixels_q90": [round(q, 1) for q in q90], "specks": [j for j, q in enumerate(q90) if q < SPECK * max(q90)]}


def decomposition_scores(model, guide, data, batch_size=100, device="cpu"):
    """mIOU, aIOU, DPA, FG-ARI and MSE where there is ground truth, MSE alone where not; both with
    "slots", slot_check() of the predictions.

    -> (metrics.summarise()'s dict, or {"MSE", "support"}, and "slots"; skipped {metric: reason})
    """
    parts, mse, sizes = [], [], []
    for i, pred in enumerate(decompose_batches(model, guide, data.images, batch_size, device)):
        s = slice(i * batch_size, (i + 1) * batch_size)
        mse.append(metrics.mse(pred["recon"], data.images[s].cpu()))  # predictions come back on the CPU
        sizes.append(slot_sizes(pred["alpha"]))
        if data.has_truth:
            parts.append(metrics.per_image(data.amodal[s].cpu(), data.count[s].cpu(), pred["alpha"], pred["depth"]))
    mse, slots = torch.cat(mse), slot_check(torch.cat(sizes))
    if not data.has_truth:
        reason = f"the {data.name!r} dataset has no ground-truth object masks"
        return ({"MSE": float(mse.mean()), "support": {"MSE": {"images": len(mse)}}, "slots": slots},
                dict.fromkeys(DECOMPOSITION, reason))
    scores = dict(metrics.concat(parts), mse=mse)
    return {**metrics.summarise(scores), "slots": slots}, {}


def evaluate_data(model, guide, cfg, data, split="eval", batch_size=100, device="cpu", fid=True, fid_n=None,
                  seed=0, hyperprior=False):
    """Every metric of the run on a Dataset -> the results dict written to results.json."""
    if len(data) == 0:
        raise InputError("there are no images to evaluate")
    scores, skipped = decomposition_scores(model, guide, data, batch_size, device)
    if fid:
        fid_n = min(fid_n or len(data), len(data))
        if fid_n < 2:
            skipped.update(dict.fromkeys(["FID", "KIDx100"], "FID and KID need at least 2 images"))
        else:
            gen, gen_skipped = generation_scores(model, cfg, data, fid_n, datasets.split_seed(seed, split),
                                                 batch_size, device, hyperprior)
            scores.update(gen)
            skipped.update(gen_skipped)
    else:
        skipped.update(dict.fromkeys(["FID", "KIDx100"], "--no-fid was given"))
    numbers = {k: v for k, v in scores.items() if k not in ("support", "dpa_curve", "slots")}
    return {"dataset": data.name, "split": split, "images": len(data), "metrics": numbers,
            "support": scores.get("support", {}), "dpa_curve": scores.get("dpa_curve"), "slots": scores["slots"],
            "skipped": skipped, "paper": PAPER.get(data.name, {}), "scene_prior": hyperprior}


def evaluate(run_dir, split="eval", n=10_000, batch_size=100, device="cpu", fid=True, fid_n=None, json_path=None,
             seed=0):
    """Evaluate a run on n images of its dataset's split; write results.json, results.md and the DPA curve.

    -> (results dict, {"json", "markdown", "dpa_curve"} paths written)
    """
    if n < 1:
        raise InputError("--n must be at least 1")
    from .train import has_scene_prior
    cfg, model, guide, state = load_run(run_dir, device)
    data = datasets.load(cfg.dataset, split, n, seed=seed, cfg=cfg)
    results = evaluate_data(model, guide, cfg, data, split, batch_size, device, fid, fid_n, seed, has_scene_prior(state))
    results["run"] = str(run_dir)
    return results, write_results(results, Path(json_path or Path(run_dir) / "results.json"))


# -- results files -------------------------------------------------------------------

def write_results(results, json_path):
    """results.json, the Markdown tables beside it (.md), and the DPA curve (-dpa.png) if there is one."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": json_path, "markdown": json_path.with_suffix(".md")}
    atomic_write(paths["json"], lambda p: p.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n"))
    atomic_write(paths["markdown"], lambda p: p.write_text(markdown(results)))
    if results.get("dpa_curve"):
        paths["dpa_curve"] = json_path.with_name(json_path.stem + "-dpa.png")
        dpa_figure(results["dpa_curve"], paths["dpa_curve"], results["dataset"])
    return paths


def _fmt(value, style="{:.3f}"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return style.format(value)


def _table(title, columns, results, styles):
    """One paper-style table: a row of ours and a row of the paper's numbers."""
    ours, paper = results["metrics"], results["paper"]
    head = f"| {results['dataset']} | " + " | ".join(label for label, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    row_ours = "| ours | " + " | ".join(_fmt(ours.get(k), styles.get(k, "{:.3f}")) for _, k in columns) + " |"
    row_paper = "| paper | " + " | ".join(_fmt(paper.get(k), styles.get(k, "{:.3f}")) for _, k in columns) + " |"
    return f"{title}\n\n{head}\n{rule}\n{row_ours}\n{row_paper}\n"


def markdown(results):
    """The paper's Tables 3, 4 and 1 with our numbers beside theirs, then what was skipped."""
    styles = {"MSE": "{:.2e}", "FID": "{:.1f}", "FID objects": "{:.1f}", "KIDx100": "{:.2f}",
              "KIDx100 objects": "{:.2f}", "mIOU": "{:.2f}", "aIOU": "{:.2f}", "DPA": "{:.2f}", "FG-ARI": "{:.2f}"}
    parts = [f"# {results['dataset']}: {results['images']} {results['split']} images\n",
             _table("Decomposition (Table 3, Sec. 5.2; FG-ARI as the peers report it)",
                    [("mIOU", "mIOU"), ("aIOU", "aIOU"), ("DPA", "DPA"), ("FG-ARI", "FG-ARI")], results, styles),
             _table("Reconstruction (Table 4)", [("MSE", "MSE")], results, styles),
             *([slots_markdown(results["slots"])] if results.get("slots") else []),
             _table("Generation (Table 1, Sec. 5.1)",
                    [("FID scenes", "FID"), ("KID×100 scenes", "KIDx100"),
                     ("FID objects", "FID objects"), ("KID×100 objects", "KIDx100 objects")], results, styles)]
    if results["skipped"]:
        parts.append("Skipped:\n\n" + "".join(f"- {k}: {v}\n" for k, v in results["skipped"].items()))
    parts.append("Paper: Anciukevičius et al. (2020), Tables 1, 3 and 4; — where it gives no number.\n")
    return "\n".join(parts)


def slots_markdown(slots):
    """The label-free slot check as a line, and a warning where a slot draws specks."""
    q90 = slots["pixels_q90"]
    text = "Slots: pixels covered, 90th percentile over the images: " + \
        ", ".join(f"slot {j} {q:.0f}" for j, q in enumerate(q90)) + "\n"
    for j in slots["specks"]:
        text += (f"\nWarning: slot {j} draws only specks ({q90[j]:.0f} px against {max(q90):.0f}): one slot is likely "
                 "drawing several objects. If a later checkpoint still shows this, train again with another --seed "
                 "(docs/RESULTS.md, How often a run does not decompose).\n")
    return text


def dpa_figure(curve, path, title=""):  # Fig. 6: DPA against the minimum overlap of a pair
    """curve: {"min_overlap", "dpa", "pairs"} lists -> a PNG at path."""
    from .viz import _save, plt
    x = np.asarray(curve["min_overlap"])
    y = np.array([np.nan if v is None else v for v in curve["dpa"]], dtype=float)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(x, y, marker=".")
    ax.axvline(metrics.MIN_OVERLAP, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("minimum overlap of a pair's amodal masks (pixels)")
    ax.set_ylabel("DPA")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title} depth-ordering accuracy", fontsize=9)
    _save(fig, path)


# -- files of any model: `pyro-objects score GT.npz PRED.npz` -------------------------

def _check(path, name, array, ndim, kinds, what):
    if array.ndim != ndim or array.dtype.kind not in kinds:
        raise InputError(f"{path}: '{name}' must be {what}, not {array.dtype} {list(array.shape)}")


def load_truth(path):
    """A ground-truth .npz: amodal bool [N, K, H, W] back to front, count int [N], optional images uint8 [N, H, W, 3]."""
    f = datasets.read_npz(path, ("amodal", "count"), ("images",))
    _check(path, "amodal", f["amodal"], 4, "bui", "bool [N, K, H, W]")
    _check(path, "count", f["count"], 1, "ui", "int [N]")
    if f["amodal"].dtype != bool and not np.isin(f["amodal"], (0, 1)).all():
        raise InputError(f"{path}: 'amodal' must be bool [N, K, H, W] (or 0/1)")
    N, K = f["amodal"].shape[:2]
    if len(f["count"]) != N or f["count"].min(initial=0) < 0 or f["count"].max(initial=0) > K:
        raise InputError(f"{path}: 'count' must hold N = {N} numbers in 0..{K}")
    if "images" in f:
        _check(path, "images", f["images"], 4, "u", "uint8 [N, H, W, 3]")
    return {"amodal": f["amodal"].astype(bool), "count": f["count"].astype(np.int64),
            **({"images": f["images"]} if "images" in f else {})}


def load_predictions(path, truth):
    """A predictions .npz: alpha float [N, J, H, W], depth float [N, J], optional recon float [N, H, W, 3],
    checked against the ground truth's N, H and W."""
    f = datasets.read_npz(path, ("alpha", "depth"), ("recon",))
    N, _, H, W = truth["amodal"].shape
    _check(path, "alpha", f["alpha"], 4, "fbui", "float [N, J, H, W]")
    _check(path, "depth", f["depth"], 2, "fui", "float [N, J]")
    if f["alpha"].shape[0] != N or f["alpha"].shape[2:] != (H, W):
        raise InputError(f"{path}: 'alpha' is {list(f['alpha'].shape)} but the ground truth has {N} images of {H}×{W}")
    if f["depth"].shape != f["alpha"].shape[:2]:
        raise InputError(f"{path}: 'depth' is {list(f['depth'].shape)}, not [N, J] = {list(f['alpha'].shape[:2])}")
    out = {"alpha": f["alpha"].astype(np.float32), "depth": f["depth"].astype(np.float32)}
    if "recon" in f:
        if f["recon"].shape != (N, H, W, 3):
            raise InputError(f"{path}: 'recon' is {list(f['recon'].shape)}, not [N, H, W, 3] = {[N, H, W, 3]}")
        out["recon"] = f["recon"].astype(np.float32)
    return out


def score_files(truth_path, pred_path, threshold=metrics.THRESHOLD, min_overlap=metrics.MIN_OVERLAP):
    """The decomposition metrics of a predictions file against a ground-truth file -> summarise()'s dict."""
    truth = load_truth(truth_path)
    return metrics.score(truth, load_predictions(pred_path, truth), threshold, min_overlap)
