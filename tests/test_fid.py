import pytest
import torch

from pyro_objects import fid
from pyro_objects.data import polygons


def test_tf_resize_samples_input_position_i_times_in_over_out():
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # x[..., j] = j
    out = fid.tf_resize(ramp, 299)
    want = (torch.arange(299.0) * 8 / 299).clamp(max=7)
    assert out.shape == (1, 1, 299, 299)
    assert torch.allclose(out[0, 0, 5], want, atol=1e-5)
    assert torch.allclose(fid.tf_resize(torch.full((1, 3, 5, 5), 7.0), 299), torch.tensor(7.0))


@pytest.fixture(scope="module")
def features():
    net = fid.InceptionFeatures()
    shapes = polygons.generate(6, seed=1)["images"]
    noise = torch.randint(0, 256, shapes.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return fid.features(shapes, net), fid.features(noise, net)


def test_inception_features_are_2048_dimensional(features):
    shapes, _ = features
    assert shapes.shape == (6, 2048) and shapes.isfinite().all()


def test_fid_of_a_set_against_itself_is_zero_and_against_another_is_not(features):
    shapes, noise = features
    same = fid.fid_kid_of_features(shapes, shapes, kid_subset=6)
    other = fid.fid_kid_of_features(shapes, noise, kid_subset=6)
    assert abs(same["FID"]) < 1e-2
    assert other["FID"] > 100 and other["KIDx100"] > 1
    # KID's unbiased estimator leaves out k(x, x) within a set but not across, so a set
    # against itself scores slightly below 0, never above a different set.
    assert same["KIDx100"] < 0 < other["KIDx100"]
