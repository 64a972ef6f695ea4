import math

import numpy as np
import pytest
import torch

from pyro_objects import metrics
from pyro_objects.data import polygons
from pyro_objects.tools.failures import records, tables


def boxes(*spans, size=10):
    """bool [K, size, size]: object k fills rows and columns [a, b) of spans[k] = (a, b)."""
    out = torch.zeros(len(spans), size, size, dtype=torch.bool)
    for k, (a, b) in enumerate(spans):
        out[k, a:b, a:b] = True
    return out


@pytest.fixture(scope="module")
def truth():
    g = polygons.generate(16, seed=3)
    return {"images": g["images"], "amodal": g["amodal"], "count": g["count"]}


def perfect(truth):
    """The ground truth as a prediction: alpha 1 inside each object, index 0 farthest."""
    K = truth["amodal"].shape[1]
    alpha = truth["amodal"].float()
    depth = torch.linspace(0.9, 0.1, K).expand(len(alpha), K).clone()
    recon = truth["images"].float() / 255
    return {"alpha": alpha, "depth": depth, "recon": recon}


def test_ground_truth_modal_masks_and_segmentation():
    amodal = boxes((0, 6), (4, 10))[None]  # object 1 (nearer) covers the corner [4, 6) of object 0
    _, modal, seg = metrics.truth_masks(amodal, torch.tensor([2]))
    assert modal[0, 0].sum() == 36 - 4 and modal[0, 1].sum() == 36
    assert seg[0, 5, 5] == 1 and seg[0, 0, 0] == 0 and seg[0, 9, 0] == -1
    _, modal, _ = metrics.truth_masks(amodal, torch.tensor([1]))  # slot 1 is padding: ignored
    assert modal[0, 0].sum() == 36 and modal[0, 1].sum() == 0


def test_hungarian_on_a_hand_built_table():
    iou = np.array([[0.9, 0.8, 0.0],
                    [0.8, 0.1, 0.0],
                    [0.0, 0.2, 0.5]])
    # Greedy takes 0.9 first and ends at 0.9 + 0.1 + 0.5 = 1.5; the best total is 0.8 + 0.8 + 0.5 = 2.1.
    assert metrics.hungarian(iou, np.ones(3, bool)).tolist() == [1, 0, 2]
    assert metrics.hungarian(iou, np.array([False, True, True])).tolist() == [-1, 0, 2]
    assert metrics.hungarian(iou[:, :2], np.ones(3, bool)).tolist() == [1, 0, -1]  # fewer slots than objects


def test_iou_table():
    a = boxes((0, 4), (2, 6))[None]
    t = metrics.iou_table(a, a)
    assert t[0, 0, 0] == 1 and t[0, 0, 1] == pytest.approx(4 / 28)
    assert metrics.iou_table(a, torch.zeros_like(a)).eq(0).all()


def test_a_perfect_prediction_scores_one(truth):
    s = metrics.score(truth, perfect(truth))
    assert s["mIOU"] == s["aIOU"] == s["DPA"] == s["FG-ARI"] == 1
    assert s["MSE"] == 0
    assert s["support"]["aIOU"]["objects"] == 32
    assert s["support"]["DPA"]["pairs"] > 0


def test_swapping_every_depth_gives_dpa_zero(truth):
    pred = perfect(truth)
    pred["depth"] = 1 - pred["depth"]
    s = metrics.score(truth, pred)
    assert s["DPA"] == 0 and s["aIOU"] == 1


def test_an_empty_prediction_scores_zero_iou(truth):
    pred = perfect(truth)
    pred["alpha"] = torch.zeros_like(pred["alpha"])
    s = metrics.score(truth, pred)
    assert s["mIOU"] == 0 and s["aIOU"] == 0
    # All background is one cluster: FG-ARI 0 where two objects show, 1 where one does (the usual convention).
    _, modal, _ = metrics.truth_masks(truth["amodal"], truth["count"])
    one_visible = (modal.flatten(2).any(2).sum(1) == 1).double().mean()
    assert s["FG-ARI"] == pytest.approx(float(one_visible))


def test_permuting_the_slots_changes_nothing(truth):
    pred = perfect(truth)
    pred["alpha"] = torch.cat([pred["alpha"], torch.zeros_like(pred["alpha"][:, :1])], 1)  # a third, empty slot
    pred["depth"] = torch.cat([pred["depth"], torch.full_like(pred["depth"][:, :1], 0.5)], 1)
    noisy = dict(pred, alpha=pred["alpha"] * 0.8 + 0.35 * torch.rand(pred["alpha"].shape, generator=torch.Generator().manual_seed(0)))
    perm = torch.tensor([2, 0, 1])
    permuted = dict(noisy, alpha=noisy["alpha"][:, perm], depth=noisy["depth"][:, perm])
    a, b = metrics.score(truth, noisy), metrics.score(truth, permuted)
    for k in ("mIOU", "aIOU", "DPA", "FG-ARI", "MSE"):
        assert a[k] == pytest.approx(b[k]), k
    assert a["mIOU"] < 1  # the noise did something


def test_hand_computed_image():
    """One 10×10 image: object 0 (far) fills [0, 6)², object 1 (near) fills [4, 10)²; they share 4 pixels."""
    amodal = boxes((0, 6), (4, 10))[None]
    count = torch.tensor([2])
    # Slot 0 finds object 1 exactly, slot 1 finds only [0, 4)² of object 0, and is put in front.
    alpha = torch.stack([boxes((4, 10))[0], boxes((0, 4))[0]])[None].float()
    depth = torch.tensor([[0.8, 0.2]])
    s = metrics.summarise(metrics.per_image(amodal, count, alpha, depth), min_overlap=4)
    # modal: object 0 shows 32 px, slot 1 covers 16 of them: IoU 1/2; object 1: IoU 1.
    assert s["mIOU"] == pytest.approx((0.5 + 1) / 2)
    # amodal: object 0 (36 px) against slot 1 (16 px): IoU 16/36.
    assert s["aIOU"] == pytest.approx((16 / 36 + 1) / 2)
    assert s["DPA"] == 0  # object 0 is farther, but its slot has the smaller depth
    assert metrics.summarise(metrics.per_image(amodal, count, alpha, depth))["DPA"] is None  # 4 < 30 px
    # FG-ARI over the 68 foreground px: truth {32 px obj 0, 36 px obj 1}; prediction {16 slot 1, 16 bg, 36 slot 0}.
    n, same = 68, math.comb(16, 2) * 2 + math.comb(36, 2)
    rows, cols = math.comb(32, 2) + math.comb(36, 2), 2 * math.comb(16, 2) + math.comb(36, 2)
    expected = rows * cols / math.comb(n, 2)
    assert s["FG-ARI"] == pytest.approx((same - expected) / ((rows + cols) / 2 - expected))


def test_undefined_images_are_skipped_and_counted():
    amodal = torch.stack([boxes((0, 4), (6, 10)), boxes((0, 4), (0, 0))])  # no overlap; one object
    count = torch.tensor([2, 1])
    s = metrics.summarise(metrics.per_image(amodal, count, amodal.float(), torch.tensor([[0.9, 0.1], [0.9, 0.1]])))
    assert s["DPA"] is None and s["support"]["DPA"]["images_skipped"] == 2
    assert s["support"]["mIOU"] == {"objects": 3, "images_skipped": 0}
    assert s["FG-ARI"] == 1 and s["support"]["FG-ARI"]["images"] == 2


def test_dpa_curve():
    dpa, pairs = metrics.dpa_curve([0, 10, 40, 50], [True, False, True, False], [0, 30, 45, 60])
    assert pairs.tolist() == [4, 2, 1, 0]
    assert dpa[:3].tolist() == [0.5, 0.5, 0.0] and np.isnan(dpa[3])


def rect(rows, cols, size=8):
    """bool [size, size]: True on rows [a, b) and columns [c, d) of rows = (a, b), cols = (c, d)."""
    out = torch.zeros(size, size, dtype=torch.bool)
    out[rows[0]:rows[1], cols[0]:cols[1]] = True
    return out


def test_failure_records_of_two_hand_made_images():
    """Image 0: slot 0 draws object 0 exactly, slot 1 (behind it) a copy of most of it, slot 2 a patch of floor;
    object 1 is missed. Image 1: two objects side by side, each slot's mask off by a row or a column."""
    empty = rect((0, 0), (0, 0))
    amodal = torch.stack([torch.stack([rect((0, 4), (0, 4)), rect((4, 8), (4, 8)), empty]),
                          torch.stack([rect((0, 4), (0, 4)), rect((0, 4), (4, 8)), empty])])  # back to front
    count = torch.tensor([2, 2])
    alpha = torch.stack([torch.stack([rect((0, 4), (0, 4)), rect((0, 4), (0, 3)), rect((5, 8), (0, 4))]),
                         torch.stack([rect((0, 3), (0, 5)), rect((0, 5), (5, 8)), empty])]).float()
    depth = torch.tensor([[0.5, 0.6, 0.3], [0.7, 0.2, 0.9]])
    objects, images = records(amodal, count, alpha, depth)
    # image 1, object 0: 12 of its 16 px found, 3 px taken from object 1, its bottom row (4 px) left to the
    # background; object 1: 12 of 16, 3 px of floor below it, its left column given to slot 0 (3 px) and the
    # background (1 px). Both unions are 19 px.
    assert objects["iou"].tolist() == [1, 0, 12 / 19, 12 / 19]
    assert objects["missed"].tolist() == [0, 1, 0, 0]
    assert images["missed"].tolist() == [1, 0]
    assert images["copies"].tolist() == [1, 0] and images["floor"].tolist() == [1, 0]
    assert images["used"].tolist() == [3, 2]
    assert objects["from_front"].tolist() == [1, 0, 1, 0] and objects["back"].tolist() == [1, 0, 1, 0]
    assert [float(objects[k].sum()) * 19 for k in ("fp_objects", "fp_ground", "fn_slot", "fn_background")] \
        == pytest.approx([3, 3, 3, 5])
    n = len(objects["iou"])
    miou = float(objects["iou"].mean())
    assert miou == pytest.approx(metrics.summarise(metrics.per_image(amodal, count, alpha, depth))["mIOU"])
    split = float((1 - objects["iou"])[objects["missed"].bool()].sum()) / n + sum(
        float(objects[k].sum()) / n for k in ("fp_objects", "fp_ground", "fn_slot", "fn_background"))
    assert split == pytest.approx(1 - miou, abs=1e-12) and 1 - miou == pytest.approx(33 / 76)
    assert "| 4 | 0.4342 | 0.2500 | 0.0395 | 0.0395 | 0.0395 | 0.0658 |" in tables(objects, images, {0.3: miou})
