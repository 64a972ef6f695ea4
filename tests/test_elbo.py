import math
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

from pyro_objects.data import polygons, to_float
from pyro_objects.elbo import ObjectsELBO, aggregate_l1, binary_alpha_penalty, from_config, slot_overlap
from pyro_objects.guide import Guide
from pyro_objects.model import Model


def loss_of(elbo, model, guide, x, seed=1):
    pyro.set_rng_seed(seed)
    return elbo.differentiable_loss(model, guide, x, temperature=0.7)


def test_equals_trace_elbo_when_every_beta_is_one_and_the_penalty_is_off(tiny_cfg):
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    ours = loss_of(ObjectsELBO(), model, guide, x)
    pyros = loss_of(Trace_ELBO(max_plate_nesting=2), model, guide, x)
    assert torch.allclose(ours, pyros, rtol=1e-5)


def test_its_gradients_are_trace_elbos_and_svi_still_finds_every_parameter(tiny_cfg):
    """Its traces leave the param sites out (SVI.step collects them in a trace of its own)."""
    pyro.clear_param_store()
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    params = [p for m in (model, guide) for p in m.parameters()]
    grads = {}
    for name, elbo in (("ours", ObjectsELBO()), ("pyro", Trace_ELBO(max_plate_nesting=2))):
        for p in params:
            p.grad = None
        pyro.set_rng_seed(1)
        grads[name] = (elbo.loss_and_grads(model, guide, x, temperature=0.7), [p.grad for p in params])
    assert float(grads["ours"][0]) == pytest.approx(float(grads["pyro"][0]), rel=1e-5)
    trained = [a is not None for a in grads["pyro"][1]]  # stage 1 leaves the scene prior's networks out
    assert [a is not None for a in grads["ours"][1]] == trained and sum(trained) > len(params) // 2
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads["ours"][1], grads["pyro"][1]) if a is not None)
    model_trace, guide_trace = ObjectsELBO()._get_trace(model, guide, (x,), {"temperature": 0.7})
    assert not [n for t in (model_trace, guide_trace) for n, site in t.nodes.items() if site["type"] == "param"]
    before = [p.detach().clone() for p in params]
    SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=ObjectsELBO()).step(x, temperature=0.7)
    assert [not torch.equal(a, p) for a, p in zip(before, params)] == trained  # every trained parameter took a step


def test_its_nan_warning_is_a_validation_check(tiny_cfg, monkeypatch):
    """Trace_ELBO warns of a NaN loss every step, a host read that waits for the GPU; ours only
    while Pyro validates (training turns validation off and tests the loss itself)."""
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = torch.rand(2, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    read = []
    monkeypatch.setattr("pyro_objects.elbo.warn_if_nan", lambda value, msg="": read.append(msg))
    for validating in (False, True):
        with pyro.validation_enabled(validating):
            ObjectsELBO().loss_and_grads(model, guide, x, temperature=0.7)
    assert read == ["loss"]  # once: the validating step's
    with pyro.validation_enabled(False):  # a NaN loss still reaches the caller, which tests it
        loss = ObjectsELBO().loss_and_grads(model, guide, torch.full_like(x, float("nan")), temperature=0.7)
    assert math.isnan(float(loss))


def test_beta_scales_its_sites_kl_and_the_penalty_replaces_thetas(tiny_cfg):
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    plain, scaled = ObjectsELBO(), ObjectsELBO(beta={"z": 3.0}, theta_penalty=5.0)
    loss_of(plain, model, guide, x)
    loss_of(scaled, model, guide, x)
    assert torch.allclose(scaled.last_terms["kl_z"], 3 * plain.last_terms["kl_z"], rtol=1e-5)
    assert "kl_theta" in plain.last_terms and "kl_theta" not in scaled.last_terms
    assert scaled.last_terms["theta_penalty"] > 0


def test_aggregate_l1_is_zero_for_a_uniform_aggregate_and_positive_otherwise():
    P = 16
    assert aggregate_l1(torch.full((3, 2, P), 1.0 / P)) == 0
    # two slots peaked on different pixels: not uniform on its own...
    peaked = torch.zeros(1, 2, P)
    peaked[0, 0, 3] = peaked[0, 1, 7] = 1
    assert torch.isclose(aggregate_l1(peaked), torch.tensor(2 * (1 - 2 / P)))
    # ...but peaks that tile every pixel across the batch aggregate to uniform
    tiling = torch.eye(P).reshape(8, 2, P)
    assert torch.isclose(aggregate_l1(tiling), torch.tensor(0.0), atol=1e-6)


def test_binary_alphas_pay_no_alpha_penalty():
    assert binary_alpha_penalty(torch.randint(0, 2, (2, 3, 4, 4)).float()) == 0
    assert binary_alpha_penalty(torch.full((2, 3, 4, 4), 0.5)) > 0


def test_slot_overlap_of_known_positions():
    """Two slots sure of one pixel overlap by 1, d pixels apart by exp(-d² / 4px²); a third slot far away
    adds nothing; each image counts once per pair of slots."""
    def peaks(*pixels, n=32):  # [1, J, n*n]: slot j sure of pixel (row, column) pixels[j]
        out = torch.zeros(1, len(pixels), n * n)
        for j, (r, c) in enumerate(pixels):
            out[0, j, r * n + c] = 1
        return out
    assert torch.isclose(slot_overlap(peaks((10, 10), (10, 10))), torch.tensor(1.0))
    assert torch.isclose(slot_overlap(peaks((10, 10), (13, 14)), px=4.0), torch.tensor(math.exp(-25 / 64)))
    assert torch.isclose(slot_overlap(peaks((10, 10), (10, 10), (30, 30))), torch.tensor(1.0))
    assert slot_overlap(peaks((2, 2), (29, 29))) == 0
    twice = torch.cat([peaks((5, 5), (5, 5)), peaks((1, 1), (1, 3))])  # near the border: nothing is cut off
    assert torch.isclose(slot_overlap(twice), torch.tensor(1 + math.exp(-4 / 64)))
    spread = torch.full((1, 2, 32 * 32), 1 / 32 ** 2)  # uniform slots: about the kernel's area over the image's
    assert slot_overlap(spread) < 0.25


def test_slot_overlap_is_a_term_of_its_own(tiny_cfg):
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    elbo = from_config(tiny_cfg.replace(slot_overlap=1e3))
    with_term = loss_of(elbo, model, guide, x)
    assert set(elbo.last_terms) >= {"nll", "theta_penalty", "slot_overlap"} and elbo.last_terms["slot_overlap"] > 0
    without = loss_of(from_config(tiny_cfg), model, guide, x)
    assert torch.isclose(with_term - without, elbo.last_terms["slot_overlap"], atol=4)  # float32 at 1e7: ulp 1


def test_a_few_svi_steps_lower_the_loss(tiny_cfg):
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    x = to_float(polygons.generate(8, seed=0, image_size=tiny_cfg.image_size)["images"])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), loss=from_config(tiny_cfg))
    losses = [svi.step(x, temperature=1.0) for _ in range(40)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
