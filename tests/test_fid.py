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


class Counting(torch.nn.Module):
    """A stand-in feature network: fixed features from the images' means, counting the images it sees."""
    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, images):  # uint8 [B, 3, H, W] -> float64 [B, 2048]
        self.seen += len(images)
        return images.double().mean((1, 2, 3))[:, None] * torch.arange(1, fid.FEATURES + 1, dtype=torch.float64)


def test_held_out_features_are_computed_once_and_read_back_after(tmp_path):
    images = polygons.generate(6, seed=3, image_size=32)["images"]
    net = Counting()
    first = fid.held_out_features(images, net, batch_size=4, cache=tmp_path)
    again = fid.held_out_features(images, net, batch_size=4, cache=tmp_path)
    assert net.seen == 6 and torch.equal(first, again) and len(list(tmp_path.iterdir())) == 1
    assert torch.equal(first, fid.features(images, Counting(), batch_size=4))
    other = fid.held_out_features(images[:5], net, batch_size=4, cache=tmp_path)  # another set: its own file
    assert net.seen == 11 and torch.equal(other, first[:5]) and len(list(tmp_path.iterdir())) == 2
    for path in tmp_path.iterdir():  # a damaged file is computed again and replaced
        path.write_bytes(b"not features")
    assert torch.equal(fid.held_out_features(images, net, batch_size=4, cache=tmp_path), first) and net.seen == 17
    assert torch.equal(fid.held_out_features(images, net, batch_size=4, cache=tmp_path), first) and net.seen == 17


def test_the_features_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PYRO_OBJECTS_CACHE", str(tmp_path / "c"))
    assert fid.features_cache() == tmp_path / "c" / "inception"
    monkeypatch.delenv("PYRO_OBJECTS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert fid.features_cache() == tmp_path / "x" / "pyro-objects" / "inception"
