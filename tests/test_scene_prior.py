import csv

import pyro
import torch
from click.testing import CliRunner
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyro_objects.cli import main
from pyro_objects.elbo import scene_prior_elbo
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.runs import has_scene_prior, load_checkpoint
from pyro_objects.schedules import stage


def one_hot_modes(cfg, B, pixels):
    """Posterior modes as the guide gives them: slot j of every image at pixels[j]."""
    J, N = cfg.slots, cfg.image_size
    theta = torch.zeros(B, J, N * N)
    for j, p in enumerate(pixels):
        theta[:, j, p] = 1
    return {"theta": theta, "z": torch.randn(B, J, cfg.z_dim), "d": torch.rand(B, J) * 0.8 + 0.1}


def stage_two_terms(cfg, model, guide, modes, beta_y=None):
    elbo = scene_prior_elbo(cfg if beta_y is None else cfg.replace(beta_y=beta_y))
    B = len(modes["d"])
    pyro.set_rng_seed(3)
    loss = elbo.differentiable_loss(model.scene_prior, guide.scene_posterior, B, modes["theta"], modes["z"], modes["d"])
    return loss, elbo.last_terms


def test_stage_two_scores_the_modes_under_the_hyperprior(tiny_cfg):
    cfg, B = tiny_cfg, 3
    model, guide = Model(cfg), Guide(cfg)
    modes = one_hot_modes(cfg, B, [5, 700])
    loss, terms = stage_two_terms(cfg, model, guide, modes, beta_y=1.0)
    assert set(terms) == {"kl_y", "nll_theta", "nll_z", "nll_d"}
    pyro.set_rng_seed(3)  # with β_y = 1 it is Pyro's own ELBO of the modes
    plain = Trace_ELBO(max_plate_nesting=2).differentiable_loss(
        model.scene_prior, guide.scene_posterior, B, modes["theta"], modes["z"], modes["d"])
    assert torch.allclose(loss, plain, rtol=1e-5)
    # θ's term is the categorical log-probability of each mode's pixel under ζ's logits
    pyro.set_rng_seed(3)
    q = poutine.trace(guide.scene_posterior).get_trace(B, modes["theta"], modes["z"], modes["d"])
    y = q.nodes["y"]["value"][:, 0]
    log_p = torch.log_softmax(model.zeta_logits(y, B), -1)
    assert torch.allclose(terms["nll_theta"], -(log_p[:, 0, 5] + log_p[:, 1, 700]).sum(), rtol=1e-5)
    # d's term is the logit-normal density of ξ at the modes' depths
    loc, scale = model.xi_params(y, modes["theta"])
    u, d = torch.logit(modes["d"]), modes["d"]
    log_p_d = torch.distributions.Normal(loc[..., -1], scale[..., -1]).log_prob(u) - torch.log(d * (1 - d))
    assert torch.allclose(terms["nll_d"], -log_p_d.sum(), rtol=1e-4)


def test_stage_two_fits_zeta_to_where_the_modes_put_objects(tiny_cfg):
    cfg = tiny_cfg
    model, guide = Model(cfg), Guide(cfg)
    modes = one_hot_modes(cfg, 8, [37, 600])
    elbo = scene_prior_elbo(cfg)
    svi = SVI(model.scene_prior, guide.scene_posterior, pyro.optim.Adam({"lr": 1e-2}), loss=elbo)
    for _ in range(40):
        svi.step(8, modes["theta"], modes["z"], modes["d"])
    # -log p(θ | y) of 16 objects, each uniform over 1024 pixels at first, is now near 0 ...
    assert elbo.last_terms["nll_theta"] < 0.02 * 16 * torch.log(torch.tensor(1024.0))
    # ... and ζ at Q(y)'s mean puts each slot where the modes had it
    y = guide.q_y(modes["z"], modes["theta"], modes["d"]).mean[:, 0]
    probs = torch.softmax(model.zeta_logits(y, 8), -1)
    assert (probs[:, 0, 37] > 0.9).all() and (probs[:, 1, 600] > 0.9).all()


def test_the_last_hyperprior_epochs_are_stage_two_but_never_the_first():
    from pyro_objects.config import POLYGONS
    cfg = POLYGONS.replace(epochs=500, hyperprior_epochs=10)
    assert [stage(cfg, e) for e in (0, 489, 490, 499)] == [1, 1, 2, 2]  # App. B: the last 10 of 500
    assert stage(cfg.replace(epochs=1, hyperprior_epochs=1), 0) == 1
    assert {stage(cfg.replace(hyperprior_epochs=0), e) for e in range(500)} == {1}  # the ablation of Table 2


def test_stage_two_freezes_stage_one_and_resumes_exactly_across_and_within_it(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=1)  # 2 steps an epoch: steps 4 and 5 are stage 2
    whole = train_tiny(cfg, tmp_path / "whole", n=16)
    boundary = train_tiny(cfg, tmp_path / "split", n=16, max_steps=4)  # stage 1 done, stage 2 not begun
    assert boundary["stage"] == 1 and not has_scene_prior(boundary)
    within = train_tiny(cfg, tmp_path / "split", n=16, resume=True, max_steps=5)
    assert within["stage"] == 2 and has_scene_prior(within)
    resumed = train_tiny(cfg, tmp_path / "split", n=16, resume=True)
    assert whole["stage"] == resumed["stage"] == 2 and resumed["step"] == 6
    for part in ("model", "guide"):
        for name, tensor in whole[part].items():
            assert torch.equal(tensor, resumed[part][name]), f"{part}.{name} differs after resuming"
            trained_in_stage_two = name.startswith(("zeta.", "xi.", "encode_y."))
            stage_1 = boundary["average"][part][name]  # stage 2 starts from stage 1's moving average of the weights
            assert torch.equal(tensor, stage_1) != trained_in_stage_two, f"{part}.{name}"
    rows = list(csv.DictReader(open(tmp_path / "split" / "log.csv")))
    assert [r["stage"] for r in rows] == ["1"] * 4 + ["2"] * 2
    assert rows[0]["nll"] and not rows[0]["kl_y"] and rows[-1]["kl_y"] and not rows[-1]["nll"]


def test_no_hyperprior_is_recorded_and_sample_then_uses_the_fixed_priors(tmp_path, monkeypatch):
    import json
    out = tmp_path / "ablation"
    result = CliRunner().invoke(main, ["train", "polygons", "--quick", "--epochs", "2", "--n-train", "16",
                                       "--batch-size", "16", "--device", "cpu", "--out", str(out), "--no-hyperprior"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["hyperprior_epochs"] == 0
    assert load_checkpoint(out)["stage"] == 1
    calls = []
    real = Model.forward
    monkeypatch.setattr(Model, "forward", lambda self, *a, **k: calls.append(k["hyperprior"]) or real(self, *a, **k))
    result = CliRunner().invoke(main, ["sample", str(out), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert calls == [False]
    result = CliRunner().invoke(main, ["interpolate", str(out), "--a", "x.png", "--b", "y.png"])
    assert result.exit_code != 0 and "no trained scene prior" in result.output
