"""Decomposition metrics of Sec. 5.2 (mIOU, aIOU, DPA), reconstruction MSE (Table 4)
and FG-ARI, as pure functions of tensors: they score predictions of any model.

Ground truth (the format `pyro_objects.data.Dataset` holds and `pyro-objects score`
reads): `amodal` bool [N, K, H, W], objects listed back to front (index 0 farthest),
`count` int [N] (objects present; slots past it are empty), `images` uint8 [N, H, W, 3].
Predictions: `alpha` float [N, J, H, W] (the placed amodal alpha of each slot),
`depth` float [N, J] (larger is farther), `recon` float [N, H, W, 3] in [0, 1].

Choices, where the paper leaves them open:

- A predicted amodal mask is α*_j > 0.3; the predicted modal segmentation gives each
  pixel to the nearest slot whose α*_j > 0.3, else to the background.
- Each image gets two Hungarian matchings of ground-truth objects to slots, each
  maximising the summed IoU of its own kind of mask:
  * modal matching, on modal IoU, over the ground-truth objects that are visible;
    mIOU is scored on it. A wholly hidden object has no modal mask and is not scored.
  * amodal matching, on amodal IoU, over every object present; aIOU and DPA are
    scored on it (a wholly hidden object still has a whole shape and a depth).
  A ground-truth object left without a slot (J < K) scores IoU 0, and its pairs count
  as wrongly ordered.
- mIOU and aIOU average the matched IoU over all scored ground-truth objects of the
  data set; DPA is the fraction of all qualifying pairs of the data set ordered
  right (a tie in predicted depth is wrong); FG-ARI and MSE average over images.
- FG-ARI compares, over the pixels that are foreground in the ground truth, the
  ground-truth modal segmentation (from the amodal masks and the back-to-front
  order) with the predicted one; predicted background is one more cluster. Both
  one cluster scores 1, as in the IODINE / Slot Attention evaluation code.
- An image where a metric is undefined (no visible object for mIOU, no object for
  aIOU, no pair overlapping enough for DPA, fewer than two foreground pixels or a
  zero denominator for FG-ARI) is skipped, and the skipped images are counted.
"""
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .compositor import modal_segmentation

THRESHOLD = 0.3     # Sec. 5.2: a slot covers a pixel where α*_j > 0.3
MIN_OVERLAP = 30    # Sec. 5.2: DPA scores pairs whose amodal masks share at least 30 pixels
NOT_APPLICABLE = "needs a model that predicts depth and amodal masks"
NO_SLOTS = "needs a model that splits the image into slots (this one draws the whole scene as one)"
DECOMPOSITION = ("mIOU", "aIOU", "DPA", "FG-ARI")
SCORES = (*DECOMPOSITION, "MSE")  # what a decomposition is scored by: quality.csv's columns, an export's scores


def present_slots(count, K):
    """count: int [N] -> bool [N, K], True for the objects present."""
    return torch.arange(K, device=count.device) < count[:, None]


def truth_masks(amodal, count):  # Sec. 5.2: ground-truth modal masks from amodal ones and the depth order
    """amodal: bool [N, K, H, W] back to front, count: int [N] ->
        amodal [N, K, H, W] (padding slots cleared), modal [N, K, H, W], segmentation [N, H, W] (-1 background)
    """
    amodal = amodal & present_slots(count, amodal.shape[1])[:, :, None, None]
    at_or_nearer = amodal.flip(1).int().cumsum(1).flip(1)  # objects k' >= k covering each pixel
    modal = amodal & (at_or_nearer == 1)
    segmentation = torch.where(modal.any(1), modal.int().argmax(1), torch.full_like(modal[:, 0], -1, dtype=torch.long))
    return amodal, modal, segmentation


def predicted_masks(alpha, depth, threshold=THRESHOLD):  # Sec. 5.2: masks are α*_j > 0.3
    """alpha: [N, J, H, W], depth: [N, J], or None for a model without depth (its alphas are modal
    masks that share each pixel, as Slot Attention's and MONet's do: a pixel goes to its largest) ->
        amodal bool [N, J, H, W], modal bool [N, J, H, W], segmentation [N, H, W] (-1 background)
    """
    if depth is None:
        segmentation = alpha.argmax(1)
        return alpha > threshold, one_hot_masks(segmentation, alpha.shape[1]), segmentation
    segmentation = modal_segmentation(alpha, depth, threshold)
    return alpha > threshold, one_hot_masks(segmentation, alpha.shape[1]), segmentation


def one_hot_masks(segmentation, n):
    """segmentation [N, H, W] of labels in -1..n-1 -> bool [N, n, H, W] (-1 is in none)"""
    return segmentation[:, None] == torch.arange(n, device=segmentation.device)[None, :, None, None]


def iou_table(truth, pred):
    """IoU of every ground-truth mask with every predicted one; 0 where both are empty.

    truth: bool [N, K, H, W], pred: bool [N, J, H, W] -> float [N, K, J]
    """
    t, p = truth.flatten(2).float(), pred.flatten(2).float()
    inter = t @ p.transpose(1, 2)
    union = t.sum(2)[:, :, None] + p.sum(2)[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def hungarian(iou, rows):  # Sec. 5.2: Hungarian matching of ground-truth objects to slots
    """The one-to-one matching of the given rows to columns with the largest summed IoU.

    iou: [K, J] array, rows: bool [K] (which ground-truth objects take part) ->
        int [K], the slot of each object, -1 where unmatched or not taking part
    """
    iou = np.asarray(iou, dtype=np.float64)
    match = np.full(iou.shape[0], -1)
    index = np.flatnonzero(rows)
    if index.size and iou.shape[1]:
        r, c = linear_sum_assignment(iou[index], maximize=True)
        match[index[r]] = c
    return match


def match_all(iou, rows):
    """hungarian() per image. iou: [N, K, J], rows: bool [N, K] -> int64 [N, K]"""
    iou, rows = iou.cpu().numpy(), rows.cpu().numpy()
    return torch.from_numpy(np.stack([hungarian(t, r) for t, r in zip(iou, rows)])).long()


def matched_iou(iou, match, rows):
    """IoU of each scored object with its slot: 0 if unmatched, NaN if not scored.

    iou: [N, K, J], match: [N, K], rows: bool [N, K] -> float [N, K]
    """
    got = iou.cpu().gather(2, match.clamp(min=0)[:, :, None])[:, :, 0]
    got = torch.where(match >= 0, got, torch.zeros_like(got))
    return torch.where(rows.cpu(), got, torch.full_like(got, float("nan")))


def depth_pairs(amodal, present, depth, match):  # Sec. 5.2, DPA: is each overlapping pair ordered right?
    """Every pair (a, b), a < b (a farther), of present ground-truth objects.

    amodal: bool [N, K, H, W] back to front, present: bool [N, K], depth: [N, J] (larger is farther),
    match: int [N, K] (slot of each object, -1 none) ->
        image [P], overlap [P] (pixels the amodal masks share), correct bool [P]
    """
    K = amodal.shape[1]
    a, b = torch.triu_indices(K, K, 1)
    flat = amodal.flatten(2).float()
    overlap = (flat[:, a] * flat[:, b]).sum(2).cpu().long()  # [N, pairs]
    depth, present = depth.cpu(), present.cpu()
    slot_depth = depth.gather(1, match.clamp(min=0))  # [N, K]
    matched = match >= 0
    correct = (slot_depth[:, a] > slot_depth[:, b]) & matched[:, a] & matched[:, b]
    both = present[:, a] & present[:, b]
    image = torch.arange(amodal.shape[0])[:, None].expand_as(both)
    return image[both], overlap[both], correct[both]


def dpa_curve(overlap, correct, thresholds):  # Fig. 6: DPA against the overlap threshold
    """DPA over the pairs overlapping by at least each threshold.

    overlap: int [P], correct: bool [P], thresholds: int [T] -> (dpa [T], NaN where no pair; pairs int [T])
    """
    overlap, correct = np.asarray(overlap), np.asarray(correct, dtype=float)
    keep = overlap[None, :] >= np.asarray(thresholds)[:, None]
    pairs = keep.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dpa = np.where(pairs > 0, (keep * correct).sum(1) / np.maximum(pairs, 1), np.nan)
    return dpa, pairs


def fg_ari(truth_seg, pred_seg, K, J):  # the foreground ARI of IODINE, GENESIS and Slot Attention
    """Adjusted Rand index over ground-truth foreground pixels, per image.

    truth_seg: [N, H, W] in -1..K-1, pred_seg: [N, H, W] in -1..J-1 (-1 background) ->
        float64 [N], NaN where undefined
    """
    fg = (truth_seg >= 0).flatten(1)
    t = torch.nn.functional.one_hot(truth_seg.clamp(min=0).flatten(1), K).double() * fg[..., None]
    p = torch.nn.functional.one_hot((pred_seg + 1).flatten(1), J + 1).double()
    table = t.transpose(1, 2) @ p  # [N, K, J + 1] contingency table

    def pairs(x):
        return x * (x - 1) / 2

    n = table.sum((1, 2))
    index = pairs(table).sum((1, 2))
    rows, cols = pairs(table.sum(2)).sum(1), pairs(table.sum(1)).sum(1)
    expected = rows * cols / pairs(n).clamp(min=1)
    denom = (rows + cols) / 2 - expected
    ari = (index - expected) / torch.where(denom > 0, denom, torch.ones_like(denom))
    single = ((table.sum(2) > 0).sum(1) == 1) & ((table.sum(1) > 0).sum(1) == 1)
    ari = torch.where(single, torch.ones_like(ari), torch.where(denom > 0, ari, torch.full_like(ari, float("nan"))))
    return torch.where(n >= 2, ari, torch.full_like(ari, float("nan"))).cpu()


def mse(recon, images):  # Table 4: reconstruction MSE on [0, 1] pixel values
    """recon: float [N, H, W, 3] in [0, 1], images: uint8 [N, H, W, 3] -> float [N]"""
    return ((recon.float() - images.float() / 255) ** 2).flatten(1).mean(1).cpu()


def per_image(amodal, count, alpha, depth, recon=None, images=None, threshold=THRESHOLD):
    """Everything the summary needs from one batch.

    amodal: bool [B, K, H, W] back to front, count: int [B], alpha: [B, J, H, W], depth: [B, J] (None: a model
    without depth and amodal masks, which gets no aIOU or pair order); recon [B, H, W, 3] and images uint8
    [B, H, W, 3] optional ->
        dict of modal_iou, amodal_iou [B, K] (NaN: not scored), fg_ari [B] (NaN: undefined),
        pair_image, pair_overlap, pair_correct [P], and mse [B] if recon and images are given
    """
    K, J = amodal.shape[1], alpha.shape[1]
    amodal, modal, truth_seg = truth_masks(amodal.bool(), count)
    pred_amodal, pred_modal, pred_seg = predicted_masks(alpha.float(), None if depth is None else depth.float(), threshold)
    visible, present = modal.flatten(2).any(2), present_slots(count, K)
    modal_table, amodal_table = iou_table(modal, pred_modal), iou_table(amodal, pred_amodal)
    modal_match, amodal_match = match_all(modal_table, visible), match_all(amodal_table, present)
    if depth is None:  # no order to score: no pairs, and amodal IoU not scored
        image, overlap, correct = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
    else:
        image, overlap, correct = depth_pairs(amodal, present, depth.float(), amodal_match)
    out = {
        "modal_iou": matched_iou(modal_table, modal_match, visible),
        "amodal_iou": matched_iou(amodal_table, amodal_match, present & (depth is not None)),
        "fg_ari": fg_ari(truth_seg, pred_seg, K, J),
        "pair_image": image, "pair_overlap": overlap, "pair_correct": correct,
    }
    if recon is not None and images is not None:
        out["mse"] = mse(recon, images)
    return out


def concat(parts):
    """per_image() dicts of successive batches -> one dict; pair_image indexes the whole."""
    out, offset = {}, 0
    for part in parts:
        part = dict(part, pair_image=part["pair_image"] + offset)
        offset += len(part["fg_ari"])
        for k, v in part.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def _mean(x):
    return float(x.mean()) if len(x) else None


def summarise(scores, min_overlap=MIN_OVERLAP, curve_step=5):
    """Data-set numbers from per_image() output (or concat() of several).

    -> {"mIOU", "aIOU", "DPA", "FG-ARI"[, "MSE"]: float or None,
        "support": objects, pairs or images scored and images skipped, per metric,
        "dpa_curve": {"min_overlap", "dpa", "pairs"} lists (Fig. 6)}
    """
    n = len(scores["fg_ari"])
    out, support = {}, {}
    for name, key in (("mIOU", "modal_iou"), ("aIOU", "amodal_iou")):
        v = scores[key]
        scored = ~v.isnan()
        out[name] = _mean(v[scored])
        support[name] = {"objects": int(scored.sum()), "images_skipped": int((~scored.any(1)).sum())}
    keep = scores["pair_overlap"] >= min_overlap
    out["DPA"] = _mean(scores["pair_correct"][keep].double())
    support["DPA"] = {"pairs": int(keep.sum()), "min_overlap": min_overlap,
                      "images_skipped": n - len(scores["pair_image"][keep].unique())}
    ari = scores["fg_ari"]
    out["FG-ARI"] = _mean(ari[~ari.isnan()])
    support["FG-ARI"] = {"images": int((~ari.isnan()).sum()), "images_skipped": int(ari.isnan().sum())}
    if "mse" in scores:
        out["MSE"] = _mean(scores["mse"])
        support["MSE"] = {"images": n}
    top = int(scores["pair_overlap"].max()) if len(scores["pair_overlap"]) else 0
    thresholds = np.arange(0, top + curve_step, curve_step)
    dpa, pairs = dpa_curve(scores["pair_overlap"].numpy(), scores["pair_correct"].numpy(), thresholds)
    out["support"] = support
    out["dpa_curve"] = {"min_overlap": thresholds.tolist(), "dpa": [None if np.isnan(d) else float(d) for d in dpa],
                        "pairs": pairs.tolist()}
    return out


def score(truth, pred, threshold=THRESHOLD, min_overlap=MIN_OVERLAP, batch_size=500):
    """All decomposition metrics from arrays alone, for predictions of any model.

    truth: {"amodal" bool [N, K, H, W], "count" int [N], optional "images" uint8 [N, H, W, 3]};
    pred: {"alpha" [N, J, H, W], "depth" [N, J], optional "recon" [N, H, W, 3]} (tensors or arrays) ->
        summarise()'s dict. Without "depth" (a model with neither depth nor amodal masks) aIOU and DPA are
        None and "not_applicable" says why; each pixel then belongs to its slot of largest alpha. With one
        slot (J = 1: the VAE) no decomposition metric applies.
    """
    t = {k: torch.as_tensor(v) for k, v in truth.items()}
    p = {k: torch.as_tensor(v) for k, v in pred.items()}
    parts = []
    for i in range(0, len(t["count"]), batch_size):
        s = slice(i, i + batch_size)
        recon, images = p.get("recon"), t.get("images")
        depth = p["depth"][s] if "depth" in p else None
        parts.append(per_image(t["amodal"][s], t["count"][s], p["alpha"][s], depth,
                               None if recon is None else recon[s], None if images is None else images[s], threshold))
    return applicable(summarise(concat(parts), min_overlap), "depth" in p, p["alpha"].shape[1])


def applicable(scores, depth=True, slots=2):
    """summarise()'s dict with the metrics that do not apply to the model set to None and said so in
    "not_applicable": aIOU and DPA without depth and amodal masks (Slot Attention, MONet), every
    decomposition metric with a single slot (the VAE)."""
    if slots < 2:
        reasons = dict.fromkeys(DECOMPOSITION, NO_SLOTS)
    elif not depth:
        reasons = dict.fromkeys(["aIOU", "DPA"], NOT_APPLICABLE)
    else:
        return scores
    return {**scores, **dict.fromkeys(reasons), "not_applicable": reasons, "dpa_curve": None}
