import csv

import pyro
import pytest
import torch

from pyro_objects.config import CLEVR3, POLYGONS
from pyro_objects.errors import InputError
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.runs import load_checkpoint
from pyro_objects.train import parse_duration, sigma, stage_svi, temperature


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=3)  # 4 steps an epoch
    whole = train_tiny(cfg, tmp_path / "whole")
    first = train_tiny(cfg, tmp_path / "split", max_steps=6)  # stops mid-epoch
    assert (first["epoch"], first["batch"], first["step"]) == (1, 2, 6)
    resumed = train_tiny(cfg, tmp_path / "split", resume=True)
    assert resumed["step"] == whole["step"] == 12
    for part in ("model", "guide"):
        for name, tensor in whole[part].items():
            assert torch.equal(tensor, resumed[part][name]), f"{part}.{name} differs after resuming"
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 12  # header, then one row per step across both sessions


def test_a_resumed_run_goes_on_with_a_new_learning_rate_when_given_one(tiny_cfg, tmp_path, train_tiny):
    first = train_tiny(tiny_cfg, tmp_path / "r", max_steps=2)
    assert first["lr"] == tiny_cfg.lr
    resumed = train_tiny(tiny_cfg, tmp_path / "r", resume=True, max_steps=3, lr=1e-5)
    assert resumed["lr"] == 1e-5
    assert {group["lr"] for group in resumed["optim"]["param_groups"]} == {1e-5}
    assert resumed["optim"]["state"][0]["step"] == 3  # Adam's moments went on, not afresh


def test_the_learning_rate_steps_down_on_schedule_through_a_resume_and_stage_2_starts_afresh(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=4, hyperprior_epochs=1, lr_decay_epochs=(1, 2), lr_decay=0.1,  # 4 steps an epoch
                           sigma_warmup_epochs=2, sigma_warmup=0.05, sigma=(0.02, 0.01), sigma_switch=0.75)
    whole = train_tiny(cfg, tmp_path / "whole")
    split = train_tiny(cfg, tmp_path / "split", max_steps=10)  # stops in epoch 2, after both steps down
    assert split["lr"] == pytest.approx(cfg.lr * 0.01)
    assert all(group["lr"] == pytest.approx(cfg.lr * 0.01) for group in split["optim"]["param_groups"])
    assert split["optim"]["state"][0]["step"] == 10  # Adam's moments went on through both steps down
    resumed = train_tiny(cfg, tmp_path / "split", resume=True)
    with open(tmp_path / "split" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rates, sigmas = [float(row["lr"]) for row in rows], [float(row["sigma"]) for row in rows]
    assert rates == pytest.approx([cfg.lr] * 4 + [cfg.lr * 0.1] * 4 + [cfg.lr * 0.01] * 4 + [cfg.lr] * 4)  # by step
    assert sigmas == pytest.approx([0.05] * 8 + [0.02] * 4 + [0.01] * 4)  # the wide epochs went on through the resume
    assert resumed["stage"] == whole["stage"] == 2 and resumed["lr"] == whole["lr"] == cfg.lr  # new networks, base rate
    for part in ("model", "guide"):
        for name, tensor in whole[part].items():
            assert torch.equal(tensor, resumed[part][name]), f"{part}.{name} differs after resuming"


def test_a_resumed_run_goes_on_with_new_loss_weights_when_given_them(tiny_cfg, tmp_path, train_tiny):
    for name in ("same", "sharper"):
        train_tiny(tiny_cfg, tmp_path / name, max_steps=2)
    same = train_tiny(tiny_cfg, tmp_path / "same", resume=True, max_steps=3)
    sharper = train_tiny(tiny_cfg, tmp_path / "sharper", resume=True, max_steps=3, weights={"alpha_penalty": 1e6})
    assert sharper["config"]["alpha_penalty"] == 1e6 and same["config"]["alpha_penalty"] == 0.0
    last_loss = [float((tmp_path / name / "log.csv").read_text().splitlines()[-1].split(",")[3]) for name in ("same", "sharper")]
    assert last_loss[1] > last_loss[0]  # the third step's loss carries the α·log α term
    with pytest.raises(InputError, match="loss weights"):
        train_tiny(tiny_cfg, tmp_path / "same", resume=True, weights={"slots": 3})


def test_cuda_graphs_are_a_choice_a_resumed_run_may_change(tiny_cfg, tmp_path, train_tiny):
    assert train_tiny(tiny_cfg, tmp_path / "r", max_steps=1)["config"]["cuda_graphs"] is True  # the default
    state = train_tiny(tiny_cfg, tmp_path / "r", resume=True, max_steps=2, cuda_graphs=False)
    assert state["config"]["cuda_graphs"] is False and state["step"] == 2


def test_the_optimiser_state_of_a_cuda_graphed_run_goes_on_on_a_cpu(tiny_cfg):
    from pyro_objects.train import Adam
    model = Model(tiny_cfg)
    first = Adam([model], 1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    first(None)
    state = first.get_state()
    state["param_groups"][0]["capturable"] = True  # as GraphedStep leaves it on a GPU
    then = Adam([model], 1e-3)
    then.set_state(state)
    sum(p.sum() for p in model.parameters()).backward()
    then(None)  # a capturable Adam would refuse CPU parameters
    assert then.get_state()["state"][0]["step"] == 2


def test_a_run_directory_is_never_trained_over(tiny_cfg, tmp_path, train_tiny):
    train_tiny(tiny_cfg, tmp_path / "r", max_steps=1)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(InputError, match="already holds a run"):
        train_tiny(tiny_cfg, tmp_path / "r")
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


def test_a_non_finite_loss_falls_back_to_the_checkpoint_with_a_lower_learning_rate(tiny_cfg, tmp_path, monkeypatch, capsys, train_tiny):
    import pyro.infer
    real_step, calls = pyro.infer.SVI.step, {"n": 0}

    def step_with_one_nan(self, *args, **kwargs):
        calls["n"] += 1
        return float("nan") if calls["n"] == 6 else real_step(self, *args, **kwargs)

    monkeypatch.setattr(pyro.infer.SVI, "step", step_with_one_nan)
    state = train_tiny(tiny_cfg, tmp_path / "r")
    assert state["lr"] == tiny_cfg.lr / 2 and state["step"] == 8
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert "non-finite loss at step 5" in capsys.readouterr().err


def test_a_run_stopped_in_stage_1_gets_its_scene_prior_and_keeps_its_decomposition(tiny_cfg, tmp_path, train_tiny):
    import json

    from pyro_objects.train import has_scene_prior
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=0)  # 4 steps an epoch, no stage 2 of its own
    before = train_tiny(cfg, tmp_path / "r", max_steps=8)  # stops at the start of epoch 2
    assert not has_scene_prior(before)
    after = train_tiny(cfg, tmp_path / "r", resume=True, scene_prior_epochs=2, lr=2e-4)
    assert has_scene_prior(after) and (after["epoch"], after["step"]) == (4, 16)  # epochs 2 and 3, stage 2
    assert after["lr"] == 2e-4  # stage 2 at the rate given to the call that runs it
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["epochs"], saved["hyperprior_epochs"]) == (4, 2)
    prior, fitted = ("zeta.", "xi.", "encode_y."), set()
    for part in ("model", "guide"):
        for name, tensor in before[part].items():
            changed = not torch.equal(tensor, after[part][name])
            assert changed == (name.startswith(prior) and tensor.is_floating_point()), f"{part}.{name}"
            fitted |= {name.split(".")[0]} if changed else set()
    assert fitted == {"zeta", "xi", "encode_y"}  # ζ, ξ and Q(y) were fitted; nothing else moved
    with pytest.raises(InputError, match="already in stage 2"):
        train_tiny(cfg, tmp_path / "r", resume=True, scene_prior_epochs=1)


def test_corrupt_and_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="corrupt"):
        load_checkpoint(tmp_path)


def test_schedules_and_durations(tiny_cfg):
    cfg = tiny_cfg.replace(sharpness=(0.3, 1e-4), batch_size=100)  # App. B's 0.3·2^(1e-4·i)
    assert temperature(cfg, 0) == pytest.approx(1 / 0.3)
    assert temperature(cfg, 10_000) == pytest.approx(1 / 0.6)
    assert temperature(cfg, 10 ** 7) == cfg.min_temperature
    assert temperature(cfg.replace(batch_size=1000), 1_000) == pytest.approx(1 / 0.6)  # the same images seen
    assert [sigma(POLYGONS, e) for e in (0, 3, 4, 249, 250)] == pytest.approx(
        [0.01, 0.01, 0.01 / 3 ** 0.5, 0.01 / 3 ** 0.5, 0.01 / 5 ** 0.5])  # 4 wide epochs, then App. B's two
    assert sigma(CLEVR3, 0) == pytest.approx(0.01 / 3 ** 0.5)  # no warm-up where none was measured
    assert parse_duration("9m") == 540 and parse_duration("90s") == 90 and parse_duration("1h") == 3600
    with pytest.raises(InputError):
        parse_duration("soon")


def test_scoring_during_training_records_time_to_quality_and_changes_nothing(tiny_cfg, tmp_path, train_tiny):
    import csv

    from pyro_objects.data import Dataset, polygons
    cfg = tiny_cfg.replace(epochs=2)  # 8 steps
    d = polygons.generate(16, seed=1, image_size=cfg.image_size)
    held_out = Dataset("polygons", d["images"], d["amodal"], d["count"])
    plain = train_tiny(cfg, tmp_path / "plain")
    train_tiny(cfg, tmp_path / "scored", max_steps=5, eval_every=2, eval_data=held_out)
    scored = train_tiny(cfg, tmp_path / "scored", resume=True, eval_every=2, eval_data=held_out)
    for part in ("model", "guide"):
        for name, tensor in plain[part].items():
            assert torch.equal(tensor, scored[part][name]), f"scoring changed {part}.{name}"
    with open(tmp_path / "scored" / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]  # across the stop and the resume
    minutes = [float(r["minutes"]) for r in rows]
    assert all(a < b for a, b in zip(minutes, minutes[1:]))
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("mIOU", "aIOU", "FG-ARI"))
    assert scored["seconds"] >= minutes[-1] * 60
    assert (tmp_path / "scored" / "figures" / "quality.png").is_file()


def test_training_steps_the_same_weights_whether_or_not_pyro_registers_them(tiny_cfg):
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size, generator=torch.Generator().manual_seed(1))

    def three_steps(register):
        pyro.clear_param_store()
        torch.manual_seed(0)
        model, guide = Model(tiny_cfg), Guide(tiny_cfg)
        before = torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])
        _, svi, _ = stage_svi(1, tiny_cfg, model, guide, lr=1e-2)
        model.pyro_params = guide.pyro_params = register
        for step in range(3):
            torch.manual_seed(step)
            svi.step(x, temperature=0.5, sigma=0.1)
        after = torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])
        return before, after, len(pyro.get_param_store().keys())

    before, registered, n_registered = three_steps(True)
    _, unregistered, n_unregistered = three_steps(False)
    assert n_registered == len(list(Model(tiny_cfg).parameters())) + len(list(Guide(tiny_cfg).parameters()))
    assert n_unregistered == 0  # the training path skips Pyro's param store altogether...
    assert not torch.equal(before, registered)
    assert torch.equal(registered, unregistered)  # ...and steps the same weights, bit for bit
