"""The scores of a model: the paper's Tables 1, 3 and 4 (and FG-ARI) for its dataset.

`evaluate(run_dir)` scores a trained run and writes its report (report.py):

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

A peer model's run (pyro_objects.baselines) is scored by the same functions with guide None:
its modal masks give mIOU, FG-ARI and MSE; aIOU and DPA are not applicable; a generative
peer's samples give the scene FID.
"""
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import baselines
from . import data as datasets
from . import fid as fidlib
from . import metrics
from .data import clevr, dsprites, polygons, shards
from .decompose import decompose
from .errors import InputError
from .files import check_output
from .model import Model
from .report import PAPER, write_results
from .runs import has_scene_prior, load_checkpoint, load_run, locate_cache, output_path


@torch.no_grad()
def decompose_batches(model, guide, images, batch_size=100, device="cpu", desc="decompose"):
    """Decompose uint8 images [N, H, W, 3] a batch at a time, with a progress bar.

    Yields dicts of CPU tensors: alpha [B, J, H, W] (placed, amodal), depth [B, J] (larger is farther),
    theta int [B, J, 2] (row, col), recon [B, H, W, 3] in [0, 1]; a peer's (guide None) alpha and recon alone
    """
    for i in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        x = datasets.to_float(images[i:i + batch_size].to(device))
        parts = decompose(model, guide, x)
        # placement by FFT rounds alpha a little past 0 and 1
        yield {"alpha": parts["alpha"].clamp(0, 1).cpu(), "recon": parts["recon"].clamp(0, 1).permute(0, 2, 3, 1).cpu(),
               **{k: parts[k].cpu() for k in ("depth", "theta") if k in parts}}


def predict(model, guide, images, batch_size=100, device="cpu"):
    """All of decompose_batches() at once, as numpy arrays (the PRED.npz format)."""
    batches = list(decompose_batches(model, guide, images, batch_size, device))
    dtypes = {"alpha": np.float32, "depth": np.float32, "theta": np.int64, "recon": np.float32}
    return {k: torch.cat([b[k] for b in batches]).numpy().astype(t) for k, t in dtypes.items() if k in batches[0]}


# -- generation (Sec. 5.1) ---------------------------------------------------------

def polygon_objects(n, seed, image_size):
    """n ground-truth polygons, each drawn alone over the dataset's black background: uint8 [n, N, N, 3]."""
    g = polygons.generate(-(-n // polygons.OBJECTS), seed, image_size)
    alone = polygons.paint(g["amodal"].reshape(-1, 1, image_size, image_size), g["colour"].reshape(-1, 1, 3))
    return alone[:n]


def dsprites_objects(n, seed, image_size):
    """n ground-truth sprites, each drawn alone over black: uint8 [n, N, N, 3]."""
    g = dsprites.generate(-(-n // dsprites.OBJECTS[0]), seed, image_size)
    return dsprites.single_objects(g, torch.arange(len(g["count"])))[:n]


def clevr_objects(variant):
    """n ground-truth CLEVR objects, each rendered alone in its scene: uint8 [n, N, N, 3]."""
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
    background) also each non-empty slot drawn alone over it, uint8 [<= n * J, N, N, 3].
    A peer model (pyro_objects.baselines) draws scenes by its own sample(n), and no objects alone."""
    scenes, objects = [], []
    for i in tqdm(range(0, n, batch_size), desc="sample", unit="batch", leave=False):
        if not isinstance(model, Model):
            scenes.append(fidlib.to_uint8(model.sample(min(batch_size, n - i))).cpu())
            continue
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
    single = SINGLE_OBJECTS.get(data.name) if isinstance(model, Model) else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(split_seed)
        scenes, objects = generate(model, cfg, n, batch_size, device, single[1] if single else None, hyperprior)
    real = fidlib.held_out_features(data.images[:n], net, desc="inception: held-out scenes")
    fake = fidlib.features(scenes, net, desc="inception: generated scenes")
    scores, skipped = fidlib.fid_kid_of_features(real, fake), {}
    scores["FID_images"] = min(n, len(data))
    if single is None:
        reason = f"the {data.name!r} generator cannot draw single ground-truth objects yet" \
            if isinstance(model, Model) else "a peer model draws no objects alone"
        skipped.update({"FID objects": reason, "KIDx100 objects": reason})
        return scores, skipped
    m = min(n, len(objects))
    if m < 2:
        skipped.update(dict.fromkeys(["FID objects", "KIDx100 objects"], "the model drew fewer than 2 non-empty objects"))
        return scores, skipped
    truth = single[0](m, split_seed, data.image_size)
    real = fidlib.held_out_features(truth, net, desc="inception: ground-truth objects")
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


def slot_check(sizes, background_slot=False):  # label-free: docs/RESULTS.md, "How often a run does not decompose"
    """{"pixels_q90": each slot's 90th percentile of pixels covered over the images, "specks": the slots
    whose percentile is under SPECK of the largest, "against": that largest}. A speck slot is the sign
    of a run stuck with one slot drawing several objects; the 90th percentile leaves alone a spare slot
    that images with few objects leave empty. background_slot: one of the slots draws the background
    (a peer model's, such as MONet's first), so the largest slot is left out and the others are held
    to the next largest."""
    q90 = torch.quantile(sizes.float(), 0.9, dim=0).tolist()
    objects = sorted(range(len(q90)), key=lambda j: -q90[j])[1:] if background_slot else range(len(q90))
    largest = max((q90[j] for j in objects), default=0.0)
    return {"pixels_q90": [round(q, 1) for q in q90], "specks": [j for j in objects if q90[j] < SPECK * largest],
            "against": round(largest, 1)}


def decomposition_scores(model, guide, data, batch_size=100, device="cpu"):
    """mIOU, aIOU, DPA, FG-ARI and MSE where there is ground truth, MSE alone where not; both with
    "slots", slot_check() of the predictions. A peer's (guide None): aIOU and DPA not applicable; a
    model of one slot (the VAE): no decomposition metric (metrics.applicable).

    -> (metrics.summarise()'s dict, or {"MSE", "support"}, and "slots"; skipped {metric: reason})
    """
    parts, mse, sizes = [], [], []
    for i, pred in enumerate(decompose_batches(model, guide, data.images, batch_size, device)):
        s = slice(i * batch_size, (i + 1) * batch_size)
        mse.append(metrics.mse(pred["recon"], data.images[s].cpu()))  # predictions come back on the CPU
        sizes.append(slot_sizes(pred["alpha"]))
        if data.has_truth:
            parts.append(metrics.per_image(data.amodal[s].cpu(), data.count[s].cpu(), pred["alpha"], pred.get("depth")))
    mse, sizes = torch.cat(mse), torch.cat(sizes)  # sizes [N, J]
    check = slot_check(sizes, background_slot=guide is None)  # ours draws its background apart from the slots
    if not data.has_truth:
        reason = f"the {data.name!r} dataset has no ground-truth object masks"
        return ({"MSE": float(mse.mean()), "support": {"MSE": {"images": len(mse)}}, "slots": check},
                dict.fromkeys(metrics.DECOMPOSITION, reason))
    scores = {**metrics.summarise(dict(metrics.concat(parts), mse=mse)), "slots": check}
    return metrics.applicable(scores, depth=guide is not None, slots=sizes.shape[1]), {}


def evaluate_data(model, guide, cfg, data, split="eval", batch_size=100, device="cpu", fid=True, fid_n=None,
                  seed=0, hyperprior=False):
    """Every metric of the run on a Dataset -> the results dict written to results.json.
    guide None: a peer model (pyro_objects.baselines); FID where it samples scenes."""
    if len(data) == 0:
        raise InputError("there are no images to evaluate")
    scores, skipped = decomposition_scores(model, guide, data, batch_size, device)
    if fid and guide is None and not hasattr(model, "sample"):
        skipped.update(dict.fromkeys(["FID", "KIDx100"], f"{type(model).__name__} does not generate images"))
    elif fid:
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
    numbers = {k: v for k, v in scores.items() if k not in ("support", "dpa_curve", "slots", "not_applicable")}
    return {"dataset": data.name, "split": split, "images": len(data), "metrics": numbers,
            "support": scores.get("support", {}), "dpa_curve": scores.get("dpa_curve"), "slots": scores["slots"],
            "skipped": skipped, "not_applicable": scores.get("not_applicable", {}), "paper": PAPER.get(data.name, {}),
            "scene_prior": hyperprior}


def evaluate(run_dir, split="eval", n=10_000, batch_size=100, device="cpu", fid=True, fid_n=None, json_path=None,
             seed=0, cache=None):
    """Evaluate a run on n images of its dataset's split (from a dataset cache where given: a Blender-rendered
    reference, say); write results.json, results.md and the DPA curve.

    -> (results dict, {"json", "markdown", "dpa_curve"} paths written)
    """
    if n < 1:
        raise InputError("--n must be at least 1")
    json_path = Path(json_path or output_path(run_dir, "results.json"))
    for path, kind in ((json_path, "json"), (json_path.with_suffix(".md"), "md"),
                       (json_path.with_name(json_path.stem + "-dpa.png"), "png")):
        check_output(path, kind)  # before any work
    cfg, model, guide, state = load_any(run_dir, device)
    cache = cache or locate_cache(state, None, run_dir)[0]
    data = datasets.load(cfg.dataset, split, n, seed=seed, cfg=cfg, cache=cache)
    if guide is None:
        torch.manual_seed(seed)  # Slot Attention draws its first slots at random: the same numbers every time
    results = evaluate_data(model, guide, cfg, data, split, batch_size, device, fid, fid_n, seed, has_scene_prior(state))
    results["run"] = str(run_dir)
    results["renderer"] = shards.read_manifest(cache).get("renderer", "torch") if cache else "torch"
    if cache:
        results["cache"] = str(cache)
    if "baseline" in state:
        results["baseline"] = state["baseline"]
    return results, write_results(results, json_path)


def load_any(run_dir, device="cpu"):
    """(cfg, model, guide, state) of a run of ours, or of a peer model's (guide None; pyro_objects.baselines)."""
    state = load_checkpoint(run_dir, device)
    if "baseline" in state:
        return (*baselines.from_checkpoint(state, device), None, state)
    return load_run(run_dir, device)
