import pyro
import torch
from pyro.infer import Predictive

from pyro_objects.compositor import crop
from pyro_objects.guide import Guide
from pyro_objects.model import Model


def one_hot(B, J, N, pixels):
    theta = torch.zeros(B, J, N * N)
    for j, (r, c) in enumerate(pixels):
        theta[:, j, r * N + c] = 1
    return theta


def test_attentive_encoding_reads_the_crop_around_theta(tiny_cfg, monkeypatch):
    guide = Guide(tiny_cfg)
    N, M = tiny_cfg.image_size, tiny_cfg.canvas_size
    x = torch.rand(2, 3, N, N)
    theta = one_hot(2, tiny_cfg.slots, N, [(10, 12), (20, 5)])
    seen = []
    monkeypatch.setattr(guide.encode_object, "forward", lambda inputs: seen.append(inputs) or torch.zeros(
        len(inputs), 2 * (tiny_cfg.z_dim + 1)))
    guide.q_z_d(x, theta)
    window = x[:, :, 10 - M // 2:10 - M // 2 + M, 12 - M // 2:12 - M // 2 + M]  # slot 0's M×M window at (10, 12)
    assert torch.allclose(seen[0].reshape(2, tiny_cfg.slots, 3, M, M)[:, 0], window, atol=1e-5)
    assert torch.allclose(seen[0], crop(x, theta.reshape(2, -1, N, N), M).reshape(-1, 3, M, M))


def test_without_attention_theta_is_a_fourth_channel_peaking_at_one(tiny_cfg, monkeypatch):
    cfg = tiny_cfg.replace(attentive=False, obj_encoder="c8s2e-c8s2e-d32e-d18")
    guide = Guide(cfg)
    N = cfg.image_size
    x = torch.rand(2, 3, N, N)
    theta = torch.softmax(torch.randn(2, cfg.slots, N * N), -1)
    seen = []
    monkeypatch.setattr(guide.encode_object, "forward", lambda inputs: seen.append(inputs) or torch.zeros(
        len(inputs), 2 * (cfg.z_dim + 1)))
    guide.q_z_d(x, theta)
    inputs = seen[0].reshape(2, cfg.slots, 4, N, N)
    assert torch.equal(inputs[:, 1, :3], x)
    assert torch.allclose(inputs[:, :, 3].amax((-1, -2)), torch.ones(2, cfg.slots))
    assert torch.allclose(inputs[:, :, 3].flatten(2) * theta.amax(-1, keepdim=True), theta)


def test_modes_are_the_most_probable_values(tiny_cfg):
    guide = Guide(tiny_cfg).eval()
    x = torch.rand(3, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    modes = guide.modes(x)
    logits = guide.theta_logits(x)
    assert torch.equal(modes["theta"].argmax(-1), logits.argmax(-1)) and torch.equal(modes["theta"].sum(-1), torch.ones(3, 2))
    q_z, q_d = guide.q_z_d(x, modes["theta"])
    assert torch.equal(modes["z"], q_z.mean)
    assert torch.allclose(modes["d"], torch.sigmoid(q_d.base_dist.loc))  # the logit-normal's median
    assert torch.equal(modes["z_bg"], guide.q_z_bg(x).mean)


def test_q_y_is_the_same_for_the_objects_in_any_order(tiny_cfg):
    guide = Guide(tiny_cfg)
    J = tiny_cfg.slots
    z, d = torch.randn(2, J, tiny_cfg.z_dim), torch.rand(2, J)
    theta = one_hot(2, J, tiny_cfg.image_size, [(3, 4), (20, 7)])
    flip = [1, 0]
    a, b = guide.q_y(z, theta, d), guide.q_y(z[:, flip], theta[:, flip], d[:, flip])
    assert torch.allclose(a.mean, b.mean, atol=1e-6) and torch.allclose(a.stddev, b.stddev, atol=1e-6)
    assert not torch.allclose(a.mean, guide.q_y(z, theta.flip(-1), d).mean)  # but it sees where they are


def test_pyros_predictive_draws_the_posterior_and_the_prior(tiny_cfg):
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    N, J = tiny_cfg.image_size, tiny_cfg.slots
    x = torch.rand(3, 3, N, N)
    posterior = Predictive(model, guide=guide, num_samples=2)(x, temperature=0.5)
    assert posterior["theta"].shape == (2, 3, J, N * N) and posterior["d"].shape == (2, 3, J)
    assert ((posterior["d"] > 0) & (posterior["d"] < 1)).all()
    prior = Predictive(model, num_samples=2, return_sites=["z", "x"])(n=3, temperature=0.5)
    assert prior["z"].shape == (2, 3, J, tiny_cfg.z_dim) and prior["x"].shape == (2, 3, 1, 3, N, N)
    assert not torch.equal(prior["z"][0], prior["z"][1])
    assert len(pyro.get_param_store()) > 0  # both registered their networks, as pyro.module does
