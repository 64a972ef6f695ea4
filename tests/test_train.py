import contextlib
import csv
import json
import time

import pyro
import pytest
import torch

from pyro_objects import runs
from pyro_objects.cli.common import parse_duration
from pyro_objects.config import CLEVR3, POLYGONS, Speed, check
from pyro_objects.errors import InputError, TrainingError
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.runs import has_scene_prior, load_checkpoint
from pyro_objects.schedules import batch_size, sigma, temperature
from pyro_objects.train import Stage, WeightAverage


def same_networks(a, b):
    for part in ("model", "guide"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs"


def adam_steps(state):
    """The step counts of the parameters Adam has stepped, from a checkpoint's optimiser state."""
    return {int(s["state"][0]["step"]) for s in state["optim"].values() if s["state"]}


def adam_rates(state):
    return {g["lr"] for s in state["optim"].values() for g in s["param_groups"]}


@pytest.mark.parametrize("obj_encoder", [None, "c8s2e-b-c8s2e-b-d32e-d18"], ids=["no batch norm", "batch norm"])
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tiny_cfg, tmp_path, train_tiny, obj_encoder):
    cfg = tiny_cfg.replace(epochs=3, obj_encoder=obj_encoder or tiny_cfg.obj_encoder)  # 4 steps an epoch
    whole = train_tiny(cfg, tmp_path / "whole")
    first = train_tiny(cfg, tmp_path / "split", max_steps=6)  # stops mid-epoch
    assert (first["epoch"], first["batch"], first["step"]) == (1, 2, 6)
    resumed = train_tiny(cfg, tmp_path / "split", resume=True)
    assert resumed["step"] == whole["step"] == 12
    same_networks(whole, resumed)
    assert resumed["optim"].keys() == whole["optim"].keys()
    for name, s in whole["optim"].items():  # and so are Adam's moments, parameter by parameter
        for k, v in s["state"].get(0, {}).items():
            assert torch.equal(v, resumed["optim"][name]["state"][0][k]), f"{name} {k}"
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 12  # header, then one row per step across both sessions


def test_the_checkpoint_holds_pyros_optimiser_state_by_parameter_name(tiny_cfg, tmp_path, train_tiny):
    state = train_tiny(tiny_cfg, tmp_path / "r", max_steps=2)
    names = {f"model$$${n}" for n, _ in Model(tiny_cfg).named_parameters()} | \
        {f"guide$$${n}" for n, _ in Guide(tiny_cfg).named_parameters()}
    assert set(state["optim"]) == names
    assert adam_steps(state) == {2}  # ζ, ξ and Q(y) are unused in stage 1 and have no moments yet
    assert not state["optim"]["model$$$zeta.0.1.weight"]["state"]


def test_a_resumed_run_goes_on_with_a_new_learning_rate_when_given_one(tiny_cfg, tmp_path, train_tiny):
    first = train_tiny(tiny_cfg, tmp_path / "r", max_steps=2)
    assert first["lr"] == tiny_cfg.lr
    resumed = train_tiny(tiny_cfg, tmp_path / "r", resume=True, max_steps=3, lr=1e-5)
    assert resumed["lr"] == 1e-5 and adam_rates(resumed) == {1e-5}
    assert adam_steps(resumed) == {3}  # Adam's moments went on, not afresh


def test_the_learning_rate_steps_down_on_schedule_through_a_resume_and_stage_2_starts_afresh(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=4, hyperprior_epochs=1, lr_decay_epochs=(1, 2), lr_decay=0.1,  # 4 steps an epoch
                           sigma_warmup_epochs=2, sigma_warmup=0.05, sigma=(0.02, 0.01), sigma_switch=0.75)
    whole = train_tiny(cfg, tmp_path / "whole")
    split = train_tiny(cfg, tmp_path / "split", max_steps=10)  # stops in epoch 2, after both steps down
    assert split["lr"] == pytest.approx(cfg.lr * 0.01) and list(adam_rates(split)) == pytest.approx([cfg.lr * 0.01])
    assert adam_steps(split) == {10}  # Adam's moments went on through both steps down
    resumed = train_tiny(cfg, tmp_path / "split", resume=True)
    with open(tmp_path / "split" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rates, sigmas = [float(row["lr"]) for row in rows], [float(row["sigma"]) for row in rows]
    assert rates == pytest.approx([cfg.lr] * 4 + [cfg.lr * 0.1] * 4 + [cfg.lr * 0.01] * 4 + [cfg.lr] * 4)  # by step
    assert sigmas == pytest.approx([0.05] * 8 + [0.02] * 4 + [0.01] * 4)  # the wide epochs went on through the resume
    assert resumed["stage"] == whole["stage"] == 2 and resumed["lr"] == whole["lr"] == cfg.lr  # new networks, base rate
    same_networks(whole, resumed)


def test_the_batch_grows_on_schedule_with_its_rate_through_a_resume_and_stage_2_keeps_the_first(
        tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=4, hyperprior_epochs=1, batch_growth_epochs=(1, 2), batch_growth=2, batch_growth_lr=1.5)
    assert [batch_size(cfg, e) for e in range(4)] == [8, 16, 32, 8]  # of 32 images: 4, 2, 1, then stage 2's 4 steps
    whole = train_tiny(cfg, tmp_path / "whole")
    split = train_tiny(cfg, tmp_path / "split", max_steps=5)  # stops in epoch 1, after the first growth
    assert (split["epoch"], split["batch"], split["step"], split["images"]) == (1, 1, 5, 48)
    assert split["lr"] == pytest.approx(cfg.lr * 1.5) and adam_steps(split) == {5}  # the moments went on
    resumed = train_tiny(cfg, tmp_path / "split", resume=True)
    assert resumed["step"] == whole["step"] == 11 and resumed["images"] == whole["images"] == 3 * 32 + 32
    with open(tmp_path / "split" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["lr"]) for r in rows] == pytest.approx([cfg.lr] * 4 + [cfg.lr * 1.5] * 2 + [cfg.lr * 2.25] + [cfg.lr] * 4)
    images = [8, 16, 24, 32, 48, 64, 96]  # after each stage-1 step: θ's temperature follows the images, not the steps
    assert [float(r["temperature"]) for r in rows[:7]] == pytest.approx([temperature(cfg, i) for i in images])
    same_networks(whole, resumed)
    with pytest.raises(InputError, match="fewer than one batch of 64 .epoch 1's"):
        train_tiny(cfg.replace(batch_growth=8), tmp_path / "too-large")
    with pytest.raises(InputError, match="batch_growth_epochs"):
        check(cfg.replace(batch_growth_epochs=(2, 1)))


def test_a_resumed_run_goes_on_with_new_loss_weights_when_given_them(tiny_cfg, tmp_path, train_tiny):
    for name in ("same", "sharper"):
        train_tiny(tiny_cfg, tmp_path / name, max_steps=2)
    same = train_tiny(tiny_cfg, tmp_path / "same", resume=True, max_steps=3)
    sharper = train_tiny(tiny_cfg, tmp_path / "sharper", resume=True, max_steps=3, weights={"alpha_penalty": 1e6})
    assert sharper["config"]["alpha_penalty"] == 1e6 and same["config"]["alpha_penalty"] == 0.0
    last_loss = [float((tmp_path / name / "log.csv").read_text().splitlines()[-1].split(",")[3]) for name in ("same", "sharper")]
    assert last_loss[1] > last_loss[0]  # the third step's loss carries the α·log α term
    with pytest.raises(InputError, match="only its loss weights"):
        train_tiny(tiny_cfg, tmp_path / "same", resume=True, weights={"slots": 3})


def test_a_resumed_run_may_change_how_fast_it_runs_and_takes_the_same_steps(tiny_cfg, tmp_path, train_tiny):
    whole = train_tiny(tiny_cfg, tmp_path / "whole", max_steps=3)
    train_tiny(tiny_cfg, tmp_path / "r", max_steps=1)
    resumed = train_tiny(tiny_cfg, tmp_path / "r", resume=True, max_steps=3,
                         speed=Speed(channels_last=True, cuda_graphs=False))
    assert resumed["step"] == 3 and "channels_last" not in resumed["config"]
    for part in ("model", "guide"):
        for name, tensor in whole[part].items():
            assert torch.allclose(tensor, resumed[part][name], rtol=1e-4, atol=1e-6), f"{part}.{name}"


def test_a_run_directory_is_never_trained_over(tiny_cfg, tmp_path, train_tiny):
    train_tiny(tiny_cfg, tmp_path / "r", max_steps=1)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(InputError, match="already holds a run"):
        train_tiny(tiny_cfg, tmp_path / "r")
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before


def nan_on_calls(monkeypatch, calls):
    """SVI.step returns NaN on the given (1-based) calls."""
    import pyro.infer
    real_step, count = pyro.infer.SVI.step, {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        return float("nan") if count["n"] in calls else real_step(self, *args, **kwargs)
    monkeypatch.setattr(pyro.infer.SVI, "step", step)


def test_a_non_finite_loss_goes_back_to_the_checkpoint_at_half_the_learning_rate(tiny_cfg, tmp_path, monkeypatch, capsys,
                                                                                train_tiny):
    nan_on_calls(monkeypatch, {6})  # step 5, in epoch 1: back to the end of epoch 0, step 4
    cfg = tiny_cfg.replace(hyperprior_epochs=0)  # 2 epochs of 4 steps, stage 1 only
    state = train_tiny(cfg, tmp_path / "r")
    assert state["lr"] == cfg.lr / 2 and state["step"] == 8
    assert adam_steps(state) == {8}  # Adam's moments came back with the networks, and went on
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert "non-finite loss at step 5" in capsys.readouterr().err
    with open(tmp_path / "r" / "log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 5, 6, 7, 8]  # step 5 went again


def test_a_loss_that_stays_non_finite_stops_training_and_leaves_the_checkpoint(tiny_cfg, tmp_path, monkeypatch, train_tiny):
    train_tiny(tiny_cfg, tmp_path / "r", max_steps=4)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    nan_on_calls(monkeypatch, set(range(1, 100)))
    with pytest.raises(TrainingError, match="after 3 restores"):
        train_tiny(tiny_cfg, tmp_path / "r", resume=True, time_budget=60)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(TrainingError, match="before any checkpoint"):
        train_tiny(tiny_cfg, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "checkpoint.pt").exists()


def test_a_second_process_cannot_train_the_same_run(tiny_cfg, tmp_path, train_tiny):
    import os
    import subprocess
    import sys
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(InputError, match=f"another process \\(pid {sleeper.pid}\\)"):
            train_tiny(tiny_cfg, run_dir, max_steps=1)
        assert not (run_dir / "checkpoint.pt").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    state = train_tiny(tiny_cfg, run_dir, max_steps=1)  # the lock of a process that has ended is taken over
    assert state["step"] == 1 and not (run_dir / ".lock").exists()
    assert os.getpid()  # this process held the lock and let it go


def test_a_run_stopped_in_stage_1_gets_its_scene_prior_and_keeps_its_decomposition(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=0)  # 4 steps an epoch, no stage 2 of its own
    before = train_tiny(cfg, tmp_path / "r", max_steps=8)  # stops at the start of epoch 2
    assert not has_scene_prior(before)
    after = train_tiny(cfg, tmp_path / "r", resume=True, scene_prior_epochs=2, lr=2e-4)
    assert has_scene_prior(after) and (after["epoch"], after["step"]) == (4, 16)  # epochs 2 and 3, stage 2
    assert after["lr"] == 2e-4  # stage 2 at the rate given to the call that runs it
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["epochs"], saved["hyperprior_epochs"]) == (4, 2)
    prior, fitted = ("zeta.", "xi.", "encode_y."), set()
    for part in ("model", "guide"):  # stage 2 starts from stage 1's moving average of the weights
        for name, tensor in before["average"][part].items():
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
    assert temperature(cfg, 1_000_000) == pytest.approx(1 / 0.6)  # 10,000 steps of 100 images
    assert temperature(cfg.replace(batch_size=1000), 1_000_000) == pytest.approx(1 / 0.6)  # the batch does not enter
    assert temperature(cfg, 10 ** 9) == cfg.min_temperature
    assert [sigma(POLYGONS, e) for e in (0, 3, 4, 249, 250)] == pytest.approx(
        [0.01, 0.01, 0.01 / 3 ** 0.5, 0.01 / 3 ** 0.5, 0.01 / 5 ** 0.5])  # 4 wide epochs, then App. B's two
    assert sigma(CLEVR3, 0) == pytest.approx(0.01 / 3 ** 0.5)  # no warm-up where none was measured
    printed = cfg.replace(temperature_reading="epoch", n_train=1000)  # App. B as printed: 0.3·2^(1e-4·epoch)
    assert temperature(printed, 0) == pytest.approx(0.3) and temperature(printed, 1000 * 499) == pytest.approx(0.3 * 2 ** 0.0499)
    assert parse_duration("9m") == 540 and parse_duration("90s") == 90 and parse_duration("1h") == 3600
    with pytest.raises(InputError):
        parse_duration("soon")
    for nothing in ("0", "0s", "0.0m"):  # a run of no time would write an untrained checkpoint
        with pytest.raises(InputError, match="no time at all"):
            parse_duration(nothing)


def test_scoring_during_training_records_time_to_quality_and_changes_nothing(tiny_cfg, tmp_path, train_tiny,
                                                                             monkeypatch):
    from pyro_objects import train as training
    from pyro_objects.data import Dataset, polygons
    eager = training.fast.eager

    @contextlib.contextmanager
    def slow_eager():  # entering a check is not training: its minutes are taken before
        time.sleep(0.2)
        with eager():
            yield

    monkeypatch.setattr(training.fast, "eager", slow_eager)
    cfg = tiny_cfg.replace(epochs=2)  # 8 steps
    d = polygons.generate(16, seed=1, image_size=cfg.image_size)
    held_out = Dataset("polygons", d["images"], d["amodal"], d["count"])
    plain = train_tiny(cfg, tmp_path / "plain")
    train_tiny(cfg, tmp_path / "scored", max_steps=5, eval_every=2, eval_data=held_out)
    scored = train_tiny(cfg, tmp_path / "scored", resume=True, eval_every=2, eval_data=held_out)
    same_networks(plain, scored)
    with open(tmp_path / "scored" / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]  # across the stop and the resume
    minutes = [float(r["minutes"]) for r in rows]
    assert all(a < b for a, b in zip(minutes, minutes[1:]))
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("mIOU", "aIOU", "FG-ARI"))
    assert scored["seconds"] >= minutes[-1] * 60
    assert (tmp_path / "scored" / "figures" / "quality.png").is_file()


def test_svi_trains_the_networks_own_weights_through_pyros_param_store(tiny_cfg):
    """Pyro as shipped: pyro.module puts the networks' parameters themselves in the param store, and
    SVI.step with pyro.optim.Adam moves them; stage 2 registers only ζ, ξ and Q(y)."""
    pyro.clear_param_store()
    model, guide = Model(tiny_cfg), Guide(tiny_cfg)
    stage = Stage(1, tiny_cfg, model, guide, 1e-2, "cpu", Speed())
    assert type(stage.svi.optim) is pyro.optim.PyroOptim and stage.svi.optim.pt_optim_constructor is torch.optim.Adam
    x = torch.rand(4, 3, tiny_cfg.image_size, tiny_cfg.image_size)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pyro.validation_enabled(False):
        stage.step(x, 0.5, 0.1)
    store = pyro.get_param_store()
    for name, p in model.named_parameters():
        assert store[f"model$$${name}"] is p  # the very tensor, not a copy
    assert not torch.equal(before["F_obj.0.1.weight"], model.F_obj[0][1].weight)
    assert torch.equal(before["zeta.0.1.weight"], model.zeta[0][1].weight)  # unused in stage 1
    pyro.clear_param_store()
    stage = Stage(2, tiny_cfg, model, guide, 1e-2, "cpu", Speed())
    with pyro.validation_enabled(False):
        stage.step(x, 0.5, 0.1)
    assert {k.split("$$$")[1].split(".")[0] for k in pyro.get_param_store().keys()} == {"zeta", "xi", "encode_y"}


def test_a_slow_first_step_does_not_end_a_budgeted_call(monkeypatch):
    """Compilation and graph capture make a call's first steps slow; the budget plans with the later ones."""
    from pyro_objects import train as training
    now = [0.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
    clock = training.Clock(None, budget=340)
    steps = 0
    for took in [130.0, 5.0, 1.0] + [0.05] * 10_000:
        if clock.out_of_time():
            break
        clock.tick()
        now[0] += took
        clock.tock()
        steps += 1
    assert steps > 3000 and now[0] <= 340  # ~4,000 steps of 0.05 s fit after the first three


def test_epoch_figures_are_drawn_at_the_first_and_last_epochs_and_at_most_once_a_minute(tiny_cfg, tmp_path, monkeypatch):
    from pyro_objects import monitor, train as training
    from pyro_objects.data import Dataset, polygons
    log = monitor.Log(tmp_path, resume=False)
    due = [log.figures_due(s) for s in (5.0, 30.0, 66.0, 70.0, 126.0)] + [log.figures_due(127.0, last=True)]
    log.close()
    assert due == [True, False, True, False, True, True]
    drawn = []
    monkeypatch.setattr(training, "epoch_figures", lambda *args, **kwargs: drawn.append(args[5]))
    d = polygons.generate(32, seed=0, image_size=tiny_cfg.image_size)
    cfg = tiny_cfg.replace(epochs=4)  # a few seconds in all: the first and the last epoch are drawn
    training.train(runs.start(cfg, tmp_path / "run", 0), data=Dataset("polygons", d["images"], d["amodal"], d["count"]),
                   progress=False)
    assert drawn == [1, 4]


def test_a_run_records_the_seconds_its_steps_took_across_calls(tiny_cfg, tmp_path, train_tiny):
    first = train_tiny(tiny_cfg.replace(epochs=2), tmp_path / "run", max_steps=3)
    assert 0 < first["step_seconds"] <= first["seconds"]
    last = train_tiny(None, tmp_path / "run", resume=True)
    assert first["step_seconds"] < last["step_seconds"] <= last["seconds"]


def test_the_clock_records_where_the_seconds_went(monkeypatch):
    """A call's first three steps apart from the rest, checkpoints and figures within the seconds trained,
    checks outside them; a resumed call adds to what its checkpoint recorded."""
    from pyro_objects import train as training
    now = [0.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])

    def call(clock, steps):
        now[0] += 2.0  # data, networks: between the parts
        for took in steps:
            clock.tick()
            now[0] += took
            clock.tock()
        with clock.part("checkpoints"):
            now[0] += 0.5
        with clock.part("figures"):
            now[0] += 0.25
        with clock.paused() as trained:  # a check: its minutes are those trained as it begins
            now[0] += 4.0
        assert trained == clock.seconds()
        return clock.record()

    first = call(training.Clock(None, None), [30.0, 1.0, 1.0, 0.125, 0.125])
    assert first == {"seconds": 35.0, "step_seconds": 32.25,
                     "time_parts": {"first_steps": 32.0, "checkpoints": 0.5, "figures": 0.25, "checks": 4.0}}
    last = call(training.Clock(first, None), [10.0, 0.125, 0.125, 0.125])
    assert last == {"seconds": 35.0 + 13.125, "step_seconds": 32.25 + 10.375,
                    "time_parts": {"first_steps": 42.25, "checkpoints": 1.0, "figures": 0.5, "checks": 8.0}}
    older = {"seconds": 35.0, "step_seconds": 32.25}  # a checkpoint from before the parts were recorded
    resumed = call(training.Clock(older, None), [1.0])
    assert resumed["time_parts"] is None and call(training.Clock(resumed, None), [1.0])["time_parts"] is None


def test_a_run_records_where_its_seconds_went(tiny_cfg, tmp_path, train_tiny):
    from pyro_objects.data import Dataset, polygons
    from pyro_objects.train import Clock
    d = polygons.generate(4, seed=1, image_size=tiny_cfg.image_size)
    held_out = Dataset("polygons", d["images"], d["amodal"], d["count"])
    state = train_tiny(tiny_cfg.replace(epochs=3), tmp_path / "run", eval_every=2, eval_data=held_out)
    parts = state["time_parts"]
    assert set(parts) == set(Clock.PARTS)
    assert 0 < parts["first_steps"] < state["step_seconds"]  # the steps after the first three are the rest
    assert parts["checkpoints"] > 0 and parts["checks"] > 0  # figures: not drawn in train_tiny
    assert parts["first_steps"] + parts["checkpoints"] + parts["figures"] <= state["seconds"]


def test_training_images_go_to_the_device_where_they_fit_and_stay_on_the_host_where_not():
    from pyro_objects import data as datasets
    host = datasets.Dataset("polygons", torch.zeros(10, 4, 4, 3, dtype=torch.uint8))  # 480 bytes
    assert datasets.resident(host, "cpu") is host
    moved = datasets.resident(host, "meta", free_bytes=4 * 480)  # a quarter of the free memory: fits
    assert moved.images.device.type == "meta" and moved.images.shape == host.images.shape
    assert datasets.resident(host, "meta", free_bytes=4 * 480 - 1) is host
    assert datasets.resident(moved, "meta", free_bytes=0) is moved  # already there


def test_calibrate_gives_the_guides_batch_norm_the_statistics_of_decompositions_and_changes_nothing_else(tiny_cfg):
    from pyro_objects.data import Dataset, polygons
    from pyro_objects.train import calibrate
    cfg = tiny_cfg.replace(obj_encoder="c8s2e-b-c8s2e-d32e-d18")
    d = polygons.generate(cfg.calibration_batches * cfg.batch_size + 5, seed=0, image_size=cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    torch.manual_seed(0)
    guide = Guide(cfg)
    norm = next(m for m in guide.encode_object if isinstance(m, torch.nn.BatchNorm2d))
    # the known answer: what reaches the batch norm in a decomposition of each of the first batches
    inputs, probe = [], Guide(cfg)
    probe.load_state_dict(guide.state_dict())
    hook = next(m for m in probe.encode_object if isinstance(m, torch.nn.BatchNorm2d)).register_forward_pre_hook(
        lambda m, args: inputs.append(args[0].detach().clone()))
    for k in range(cfg.calibration_batches):
        probe.modes(data.batch(torch.arange(k * cfg.batch_size, (k + 1) * cfg.batch_size)))
    hook.remove()
    assert len(inputs) == cfg.calibration_batches == 10
    means = torch.stack([x.mean((0, 2, 3)) for x in inputs]).mean(0)
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(1) for x in inputs]).mean(0)

    guide.train()
    with torch.no_grad():
        norm.running_mean.fill_(5.0)  # as if training had left other statistics
    weights = {k: v.clone() for k, v in guide.state_dict().items() if "running" not in k and "num_batches" not in k}
    calibrate(guide, data, cfg.batch_size, cfg.calibration_batches, "cpu")
    torch.testing.assert_close(norm.running_mean, means)
    torch.testing.assert_close(norm.running_var, variances)
    assert guide.training and norm.momentum == 0.1
    for k, v in weights.items():
        assert torch.equal(v, guide.state_dict()[k]), k
    guide.eval()
    calibrate(guide, data, cfg.batch_size, cfg.calibration_batches, "cpu")
    assert not guide.training
    torch.testing.assert_close(norm.running_mean, means)
    calibrate(guide, data, cfg.batch_size, 0, "cpu")  # paper-training's 0: the statistics stay
    torch.testing.assert_close(norm.running_mean, means)


def test_the_weight_average_moves_toward_the_weights_by_its_warmed_up_decay():
    net = torch.nn.BatchNorm1d(2)  # a weight, a bias and two running statistics, and an integer count
    average = WeightAverage((net, torch.nn.Identity()), decay=0.5)
    before = net.weight.detach().clone()  # ones
    with torch.no_grad():
        net.weight.fill_(3.0)
    average.update(1)  # δ_1 = min(0.5, 2 / 11): the average moves 9/11 of the way
    with average.swapped():
        assert torch.allclose(net.weight, before + 9 / 11 * 2.0)
        net.running_mean.fill_(7.0)  # a calibration inside is kept in the average
    assert torch.equal(net.weight, torch.full((2,), 3.0)) and torch.equal(net.running_mean, torch.zeros(2))
    average.update(100)  # δ_100 = 0.5
    average.adopt()
    assert torch.allclose(net.weight, torch.full((2,), (1 + 9 / 11 * 2.0 + 3.0) / 2))
    assert torch.equal(net.running_mean, torch.full((2,), 3.5))


def test_a_run_with_a_weight_average_takes_the_same_steps_and_resumes_exactly(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=0, obj_encoder="c8s2e-b-c8s2e-b-d32e-d18")
    plain = train_tiny(cfg.replace(weight_average=0.0), tmp_path / "plain")
    whole = train_tiny(cfg.replace(weight_average=0.9), tmp_path / "whole")
    same_networks(plain, whole)  # the weights as trained
    assert "average" not in plain
    assert not torch.equal(whole["average"]["model"]["F_obj.0.1.weight"], whole["model"]["F_obj.0.1.weight"])
    train_tiny(cfg.replace(weight_average=0.9), tmp_path / "split", max_steps=6)
    resumed = train_tiny(None, tmp_path / "split", resume=True)
    same_networks(whole, resumed)
    same_networks(whole["average"], resumed["average"])
    _, model, _, _ = runs.load_run(tmp_path / "whole")  # what decompose, evaluate and export read
    assert torch.equal(model.state_dict()["F_obj.0.1.weight"], whole["average"]["model"]["F_obj.0.1.weight"])
    from click.testing import CliRunner
    from pyro_objects.cli import main
    for run, weights in (("whole", "stage 1's moving average"), ("plain", "as trained")):
        assert f"weights: {weights}\n" in CliRunner().invoke(main, ["info", str(tmp_path / run)]).output


def test_stage_2_fits_the_scene_prior_to_the_weight_average(tiny_cfg, tmp_path, train_tiny):
    cfg = tiny_cfg.replace(epochs=3, weight_average=0.9)  # 4 steps an epoch; stage 2 is epoch 2
    before = train_tiny(cfg, tmp_path / "r", max_steps=8)  # the end of stage 1
    after = train_tiny(None, tmp_path / "r", resume=True)
    assert has_scene_prior(after) and "average" not in after
    prior = ("zeta.", "xi.", "encode_y.")
    for part in ("model", "guide"):
        for name, tensor in before["average"][part].items():
            if tensor.is_floating_point() and not name.startswith(prior):
                assert torch.equal(tensor, after[part][name]), f"{part}.{name}"
    from click.testing import CliRunner
    from pyro_objects.cli import main
    assert "weights: stage 1's moving average, then stage 2's scene prior\n" in \
        CliRunner().invoke(main, ["info", str(tmp_path / "r")]).output
    with pytest.raises(InputError, match="weight_average"):
        check(cfg.replace(weight_average=1.0))


def test_the_weight_average_tool_scores_the_weights_as_trained_as_a_run_without_an_average_does(tiny_cfg, tmp_path,
                                                                                                  train_tiny):
    from pyro_objects.data import Dataset, polygons
    from pyro_objects.tools.weight_average import paired, scoring_both
    cfg = tiny_cfg.replace(epochs=3, obj_encoder="c8s2e-b-c8s2e-b-d32e-d18")  # 4 steps an epoch; stage 2 from step 9
    d = polygons.generate(16, seed=1, image_size=cfg.image_size)
    held_out = Dataset("polygons", d["images"], d["amodal"], d["count"])
    train_tiny(cfg.replace(weight_average=0.0), tmp_path / "plain", eval_every=3, eval_data=held_out, max_steps=8)
    with scoring_both():
        train_tiny(cfg.replace(weight_average=0.9), tmp_path / "both", eval_every=3, eval_data=held_out)

    def rows(path):
        with open(path, newline="") as f:
            return [{k: v for k, v in r.items() if k != "minutes"} for r in csv.DictReader(f)]
    averaged, trained = rows(tmp_path / "both" / "quality.csv"), rows(tmp_path / "both" / "as-trained" / "quality.csv")
    assert [r["step"] for r in averaged] == ["3", "6", "9", "12"] and [r["step"] for r in trained] == ["3", "6"]
    assert trained == rows(tmp_path / "plain" / "quality.csv")  # the same weights, the same calibration: the same scores
    assert averaged[:2] != trained
    table = paired(tmp_path / "both").splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [c[0] for c in cells] == ["3", "6", "median difference"]
    difference = (float(averaged[0]["mIOU"]) - float(trained[0]["mIOU"]) + float(averaged[1]["mIOU"])
                  - float(trained[1]["mIOU"])) / 2  # the median of two
    assert cells[-1][2] == f"{difference:+.3f}"  # mIOU's column


@pytest.mark.skipif(not hasattr(torch.compiler, "set_stance"), reason="torch < 2.6 has no compiler stances")
def test_the_work_between_the_steps_runs_compiled_code_eagerly_and_compiles_nothing(tiny_cfg, tmp_path, monkeypatch):
    """Calibration, checks and figures run under fast.eager: a network compiled for the steps would
    otherwise compile graphs of their own (other modes and shapes) for a few batches."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    import pyro_objects.train as training
    from pyro_objects.data import Dataset, polygons

    probe = torch.compile(lambda x: x + 1, backend="eager")  # Dynamo traces it unless told to run it eagerly
    called = []

    def probing(name):
        original = getattr(training, name)

        def call(*args, **kwargs):
            called.append(name)
            probe(torch.ones(len(called)))  # a new shape each call: a new graph wherever compiling is on
            return original(*args, **kwargs)
        monkeypatch.setattr(training, name, call)

    for name in ("calibrate", "score_quality", "epoch_figures"):
        probing(name)
    torch._dynamo.reset()
    d = polygons.generate(16, seed=1, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    before = counters["frames"]["total"]
    training.train(runs.start(tiny_cfg, tmp_path / "r"), data=data, eval_every=2, eval_data=data, progress=False)
    assert {"calibrate", "score_quality", "epoch_figures"} <= set(called)
    assert counters["frames"]["total"] == before
    probe(torch.ones(99))  # the probe does compile outside: the count above can move
    assert counters["frames"]["total"] > before


def test_checkpoints_come_at_most_once_a_minute_and_at_a_calls_first_epoch_and_each_stages_end(tiny_cfg, tmp_path,
                                                                                                 monkeypatch, train_tiny):
    """On a GPU an epoch ends every few seconds: the epochs between write no checkpoint (train.CHECKPOINT_EVERY_S),
    and a run resumed from one it did write ends where an uninterrupted run does."""
    import pyro_objects.train as training
    written = []
    save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda run_dir, state: written.append(state["epoch"]) or
                        save(run_dir, state))
    cfg = tiny_cfg.replace(epochs=5, hyperprior_epochs=1)  # stage 1 in epochs 0-3, stage 2 in epoch 4
    whole = train_tiny(cfg, tmp_path / "whole")
    assert written == [1, 4, 5]  # the call's first epoch, stage 1's last, the run's last
    monkeypatch.setattr(training, "CHECKPOINT_EVERY_S", 0.0)
    written.clear()
    train_tiny(cfg, tmp_path / "every")
    assert written == [1, 2, 3, 4, 5]
    monkeypatch.setattr(training, "CHECKPOINT_EVERY_S", 60.0)
    written.clear()
    train_tiny(cfg, tmp_path / "r", max_steps=10)  # stopped in epoch 2: its checkpoint, then a resume
    resumed = train_tiny(cfg, tmp_path / "r", resume=True)
    assert written == [1, 2, 3, 4, 5]  # the stop's (epoch 2, step 10), then the resumed call's first, 4 and 5
    for part in ("model", "guide"):
        for name, tensor in whole[part].items():
            assert torch.allclose(tensor, resumed[part][name], rtol=1e-4, atol=1e-6), f"{part}.{name}"
