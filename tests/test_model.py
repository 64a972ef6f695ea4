import pyro
import pytest
import torch
from pyro import poutine

from pyro_objects.decompose import decompose
from pyro_objects.guide import Guide
from pyro_objects.model import Model, logit_normal


def traces(cfg, hyperprior):
    model, guide = Model(cfg), Guide(cfg)
    x = torch.rand(3, 3, cfg.image_size, cfg.image_size)
    kwargs = dict(temperature=0.5, hyperprior=hyperprior)
    guide_trace = poutine.trace(guide).get_trace(x, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, **kwargs)
    return model_trace, guide_trace


def sites(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and name not in ("images", "objects")}


@pytest.mark.parametrize("hyperprior", [False, True])
def test_model_and_guide_have_the_papers_sites_shapes_and_plates(tiny_cfg, hyperprior):
    cfg = tiny_cfg
    N, J = cfg.image_size, cfg.slots
    model_trace, guide_trace = traces(cfg, hyperprior)
    expected = {"z_bg": (3, 1, cfg.z_bg_dim), "theta": (3, J, N * N), "z": (3, J, cfg.z_dim), "d": (3, J)}
    if hyperprior:
        expected["y"] = (3, 1, cfg.y_dim)
    assert {n: tuple(s["value"].shape) for n, s in sites(guide_trace).items()} == expected
    assert {n: tuple(s["value"].shape) for n, s in sites(model_trace).items()} == {**expected, "x": (3, 1, 3, N, N)}
    plates = {n: [f.name for f in s["cond_indep_stack"]] for n, s in sites(model_trace).items()}
    for name in ("theta", "z", "d"):
        assert plates[name] == ["images", "objects"]
    for name in ("z_bg", "x") + (("y",) if hyperprior else ()):
        assert plates[name] == ["images"]
    assert sites(model_trace)["x"]["is_observed"]
    d = sites(guide_trace)["d"]["value"]
    assert ((d > 0) & (d < 1)).all()


def test_positions_come_from_a_relaxed_one_hot_over_pixels(tiny_cfg):
    _, guide_trace = traces(tiny_cfg, False)
    theta = sites(guide_trace)["theta"]
    assert isinstance(theta["fn"], pyro.distributions.RelaxedOneHotCategorical)
    assert torch.allclose(theta["value"].sum(-1), torch.ones(3, tiny_cfg.slots), atol=1e-4)


def test_do_theta_puts_each_object_where_it_is_told(tiny_cfg):
    cfg = tiny_cfg
    N = cfg.image_size
    model = Model(cfg)
    theta = torch.zeros(2, cfg.slots, N * N)
    theta[:, 0, 5 * N + 20] = 1      # slot 0 at row 5, col 20
    theta[:, 1, 25 * N + 9] = 1      # slot 1 at row 25, col 9
    out = poutine.do(model, data={"theta": theta})(n=2)
    alpha = out["placed"][:, :, 3]
    M = cfg.canvas_size
    canvas_alpha = out["canvas"][:, :, 3]
    for j, (r, c) in enumerate([(5, 20), (25, 9)]):
        # the canvas centre lands on (r, c), the rest of the canvas around it
        assert torch.allclose(alpha[:, j, r, c], canvas_alpha[:, j, M // 2, M // 2], atol=1e-5)
        rows = slice(max(r - M // 2, 0), r - M // 2 + M)
        cols = slice(max(c - M // 2, 0), c - M // 2 + M)
        inside = alpha[:, j, rows, cols].sum()
        assert torch.allclose(inside, alpha[:, j].sum(), rtol=1e-4)


def test_decompose_conditions_the_model_on_the_guides_modes(tiny_cfg):
    cfg = tiny_cfg
    model, guide = Model(cfg).eval(), Guide(cfg).eval()
    x = torch.rand(4, 3, cfg.image_size, cfg.image_size)
    parts = decompose(model, guide, x)
    J, N = cfg.slots, cfg.image_size
    assert parts["recon"].shape == (4, 3, N, N) and parts["alpha"].shape == (4, J, N, N)
    assert parts["depth"].shape == (4, J) and parts["theta"].shape == (4, J, 2)
    assert parts["segmentation"].min() >= -1 and parts["segmentation"].max() < J
    # the modes are deterministic
    assert torch.equal(decompose(model, guide, x)["recon"], parts["recon"])


def test_a_depth_pushed_far_back_costs_kl_instead_of_earning_it():
    # sigmoid(40) is 1.0 in float32; logit(1.0) would give back u ≈ 16, not 40, and a KL of about -29,000
    def prior():
        pyro.sample("d", logit_normal(torch.tensor(0.0), torch.tensor(1.0)))

    def far_back():
        pyro.sample("d", logit_normal(torch.tensor(40.0), torch.tensor(0.1)))

    pyro.set_rng_seed(0)
    kl = pyro.infer.Trace_ELBO().loss(prior, far_back)  # one-sample estimate of KL(q(d) || p(d))
    assert 0 < kl < 1e3


def test_with_all_positions_moving_another_object_changes_an_objects_prior(tiny_cfg):  # Eq. 5: ξ(y, θ_1...J)
    N = tiny_cfg.image_size
    y = torch.randn(1, tiny_cfg.y_dim)

    def prior_of_slot_0(model, other_pixel):
        theta = torch.zeros(1, tiny_cfg.slots, N * N)
        theta[0, 0, 5 * N + 5] = 1
        theta[0, 1, other_pixel] = 1
        return model.xi_params(y, theta)[0][0, 0]

    torch.manual_seed(0)
    every = Model(tiny_cfg.replace(xi_positions="all"))
    assert not torch.allclose(prior_of_slot_0(every, 20 * N + 3), prior_of_slot_0(every, 3 * N + 20))
    torch.manual_seed(0)
    own = Model(tiny_cfg)
    assert torch.equal(prior_of_slot_0(own, 20 * N + 3), prior_of_slot_0(own, 3 * N + 20))
    one = tiny_cfg.replace(slots=1, zeta="d32e-v2x4x4-cT4e-cT4e-cT4e-c1")  # one object: nothing else to see
    torch.manual_seed(0)
    a = Model(one.replace(xi_positions="all"))
    torch.manual_seed(0)
    b = Model(one)
    theta = torch.softmax(torch.randn(2, 1, N * N), -1)
    y = torch.randn(2, one.y_dim)
    assert all(torch.equal(u, v) for u, v in zip(a.xi_params(y, theta), b.xi_params(y, theta)))
