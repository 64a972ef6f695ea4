import math

import pytest
import torch

from pyro_objects import data
from pyro_objects.data import polygons
from pyro_objects.errors import InputError


@pytest.fixture(scope="module")
def sample():
    return polygons.generate(200, seed=3)


def test_counts_and_parameter_ranges_follow_the_spec(sample):
    assert sample["images"].shape == (200, 64, 64, 3) and sample["images"].dtype == torch.uint8
    assert sample["amodal"].shape == (200, 2, 64, 64) and (sample["count"] == 2).all()
    assert sample["edges"].min() >= 3 and sample["edges"].max() <= 6
    assert set(sample["edges"].unique().tolist()) == {3, 4, 5, 6}
    assert sample["radius"].min() >= 7.5 and sample["radius"].max() <= 12.5
    offset = sample["centre"] - 32
    assert offset.abs().max() <= 5
    assert sample["colour"].min() >= 0 and sample["colour"].max() <= 1


def test_masks_have_the_area_of_their_polygon(sample):
    k, r = sample["edges"].float(), sample["radius"]
    area = k * r ** 2 * torch.sin(2 * math.pi / k) / 2
    pixels = sample["amodal"].sum((-1, -2)).float()
    perimeter = 2 * k * r * torch.sin(math.pi / k)
    assert ((pixels - area).abs() <= perimeter).all()  # pixel centres err by at most the boundary strip


def test_painting_the_masks_back_to_front_reproduces_every_pixel(sample):
    assert torch.equal(polygons.paint(sample["amodal"], sample["colour"]), sample["images"])
    back, front = sample["amodal"][:, 0], sample["amodal"][:, 1]
    colour = (sample["colour"] * 255).round().to(torch.uint8)
    only_front = sample["images"][front]
    assert torch.equal(only_front, colour[:, 1, None, None].expand(-1, 64, 64, -1)[front])
    assert (sample["images"][~(back | front)] == 0).all()  # black background


def test_same_seed_same_data_and_splits_never_overlap():
    a = data.load("polygons", "train", 50, seed=0)
    assert torch.equal(a.images, data.load("polygons", "train", 50, seed=0).images)
    b = data.load("polygons", "eval", 50, seed=0)
    flat_a, flat_b = a.images.flatten(1), b.images.flatten(1)
    assert not (flat_a[:, None] == flat_b[None]).all(-1).any()


def test_unknown_dataset_and_split_are_named():
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        data.load("nope")
    with pytest.raises(InputError, match="unknown split 'test'"):
        data.load("polygons", "test", 4)
