import torch

from pyro_objects import data
from pyro_objects.data import dsprites
from pyro_objects.data.polygons import paint


def sample():
    return dsprites.generate(300, seed=4)


def test_counts_shapes_and_factors_follow_the_spec():
    d = sample()
    assert d["images"].shape == (300, 64, 64, 3) and d["amodal"].shape == (300, 4, 64, 64)
    assert set(d["count"].tolist()) == {2, 3, 4}
    present = torch.arange(4) < d["count"][:, None]
    areas = d["amodal"].sum((-1, -2))
    assert (areas[~present] == 0).all() and (areas[present] > 0).all()  # empty slots past the count
    assert set(d["shape"].unique().tolist()) == {0, 1, 2}
    assert all(torch.isclose(dsprites.SCALES, s).any() for s in d["scale"].unique())
    assert d["position"].min() >= dsprites.MARGIN and d["position"].max() <= 1 - dsprites.MARGIN


def test_painting_the_layers_back_to_front_reproduces_the_image_and_modal_masks_tile_the_foreground():
    d = sample()
    assert torch.equal(paint(d["amodal"], d["colour"]), d["images"])
    a = d["amodal"]
    modal = torch.stack([a[:, k] & ~a[:, k + 1:].any(1) for k in range(4)], 1)  # visible: nothing in front
    assert (modal.sum(1) <= 1).all()  # no pixel in two modal masks
    assert torch.equal(modal.any(1), d["amodal"].any(1))  # together they cover every object pixel


def test_a_lone_square_has_the_area_of_its_side():
    mask = dsprites.sprite_masks(torch.tensor([[0]]), torch.tensor([[1.0]]), torch.tensor([[0.0]]),
                                 torch.tensor([[[0.5, 0.5]]]), 64)
    side = 2 * dsprites.SIZE * 64
    assert abs(mask.sum().item() - side ** 2) <= 4 * side  # pixel centres err by the boundary strip


def test_same_seed_same_data_and_loading_by_name():
    a = data.load("multi-dsprites", "train", 20, seed=1)
    assert torch.equal(a.images, data.load("multi-dsprites", "train", 20, seed=1).images)
    assert a.amodal.shape[1] == 4 and not torch.equal(a.images, data.load("multi-dsprites", "eval", 20, seed=1).images)
