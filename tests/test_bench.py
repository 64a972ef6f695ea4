import argparse
import json
import os
import sys
from pathlib import Path

import pyro
import pytest
import torch
from click.testing import CliRunner

from pyro_objects.tools.bench import plain_loss, variant
from pyro_objects.cli import main
from pyro_objects.config import Speed, config_for
from pyro_objects.elbo import from_config
from pyro_objects.errors import InputError
from pyro_objects.guide import Guide
from pyro_objects.model import Model


def test_plain_pytorch_loss_equals_the_pyro_elbo_draw_for_draw(tiny_cfg):
    cfg = tiny_cfg.replace(alpha_penalty=3.0, slot_overlap=1e3)
    model, guide = Model(cfg), Guide(cfg)
    x = torch.rand(4, 3, cfg.image_size, cfg.image_size)
    elbo = from_config(cfg)
    pyro.set_rng_seed(5)
    pyros = elbo.differentiable_loss(model, guide, x, temperature=0.7, sigma=0.1)
    pyro.set_rng_seed(5)
    plain = plain_loss(model, guide, x, 0.7, 0.1, elbo)
    assert torch.allclose(pyros, plain, rtol=1e-5)
    # and so do the gradients, taken over every parameter at once (a bias that a norm
    # layer cancels has a gradient of rounding noise alone)
    params = list(model.parameters()) + list(guide.parameters())
    g_pyro = torch.cat([g.flatten() for g in torch.autograd.grad(pyros, params, allow_unused=True) if g is not None])
    pyro.set_rng_seed(5)
    grads = torch.autograd.grad(plain_loss(model, guide, x, 0.7, 0.1, elbo), params, allow_unused=True)
    g_plain = torch.cat([g.flatten() for g in grads if g is not None])
    assert (g_pyro - g_plain).norm() <= 1e-4 * g_pyro.norm()


def test_bench_prints_a_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "polygons", "--quick", "--batch-sizes", "4", "--repeats", "2",
                                       "--variants", "fp32,channels_last", "--data-n", "6", "--device", "cpu",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "train_img_s" in result.output and "pyro_overhead" in result.output
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["fp32", "channels_last"]
    assert rows[0]["batch"] == 4 and rows[0]["train_img_s"] > 0 and rows[0]["pyro_overhead"] > 0
    assert rows[0]["data_n"] == 6 and rows[0]["data_img_s"] > 0
    assert "first_step_s" in result.output and all(r["first_step_s"] > 0 for r in rows)


def test_variants_name_a_precision_and_flags():
    plain = Speed(precision="fp32", compile=False, channels_last=False, cuda_graphs=False)
    assert variant("fp32") == plain
    assert variant("compile+bf16") == plain.replace(precision="bf16", compile=True)
    assert variant("channels_last") == plain.replace(channels_last=True)
    assert variant("bf16+graphs") == plain.replace(precision="bf16", cuda_graphs=True)
    with pytest.raises(InputError, match="'fp16'"):
        variant("fp16+compile")
    # --precision is the old name of --variants; a bad variant stops the command before any timing
    result = CliRunner().invoke(main, ["bench", "--quick", "--precision", "fp32,fp16", "--device", "cpu"])
    assert result.exit_code == 1 and "unknown part 'fp16'" in result.output


def test_running_out_of_gpu_memory_is_one_line(monkeypatch):
    def bench(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.93 GiB.\nmore detail")
    monkeypatch.setattr("pyro_objects.cli.bench.bench", bench)
    result = CliRunner().invoke(main, ["bench", "--quick", "--device", "cpu"])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: CUDA out of memory. Tried to allocate 1.93 GiB: "
                                     "try a smaller batch (--batch-size, --batch-sizes)")


def test_render_bench_has_a_row_per_variant_and_chunk():
    from pyro_objects.tools.render_bench import table
    rows = table(["clevr3"], 16, "cpu", repeats=1, chunks=(16, 32)).splitlines()[2:]
    assert [r.split(" | ")[3] for r in rows] == ["16", "32"]
    assert all(float(r.split(" | ")[4].rstrip(" |")) > 0 for r in rows)


def test_render_bench_against_another_render_py_checks_the_bits_first(tmp_path):
    from pyro_objects.data import render
    from pyro_objects.tools.render_bench import against
    rows = against(render.__file__, ["clevr3"], 16, "cpu", repeats=1).splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("| clevr3 | cpu")
    brighter = tmp_path / "render.py"  # the same file, its lamps twice as strong
    brighter.write_text(Path(render.__file__).read_text().replace("(0.5, 25 * math.pi,", "(0.5, 50 * math.pi,"))
    with pytest.raises(ValueError, match="other bits"):
        against(str(brighter), ["clevr3"], 16, "cpu", repeats=1)


def test_the_pyro_overhead_table_times_the_six_steps_against_the_plain_one():
    from pyro_objects.tools.pyro_overhead import table
    lines = table("polygons", 1, "cpu", rounds=1, per_round=1, warmup=0).splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[-1].strip(" |") for line in lines if line.startswith("| ")}
    assert list(rows)[1:] == ["plain", "plain + float(loss)", "ELBO, pyro.module a no-op", "ELBO, parameters registered",
                              "the same + NaN read", "SVI.step"]
    assert rows["plain"] == "1.000" and all(float(r) > 0 for r in list(rows.values())[1:])


def test_the_call_table_splits_each_steps_python_calls_by_part_and_the_parts_add_up():
    from pyro_objects.tools.pyro_overhead import call_table
    rows = {}
    for line in call_table("polygons", 1, "cpu").splitlines():
        if line.startswith("| ") and not line.startswith(("| part", "|---")):
            part, *cells = (c.strip() for c in line.strip("| ").split(" | "))
            rows[part.strip("*")] = [int(c.replace(",", "")) for c in cells]
    parts = [p for p in rows if p != "all"]
    assert len(parts) == 4 and rows["pyro.module, registering the parameters"][0] == 0  # the plain step registers nothing
    assert rows["pyro.module, registering the parameters"][1] > 127  # at least a call for each of its 127 parameters
    adam = rows["torch Adam's step"]
    assert adam[0] == adam[1] > 0  # the same torch Adam over the same parameters in both
    for column in range(3):
        assert sum(rows[p][column] for p in parts) == rows["all"][column]


def test_counting_host_syncs_on_a_cpu_says_in_one_line_that_it_needs_cuda(monkeypatch, capsys):
    from pyro_objects.tools import pyro_overhead
    monkeypatch.setattr(sys, "argv", ["pyro_overhead.py", "polygons", "--syncs", "--device", "cpu"])
    with pytest.raises(SystemExit) as exit:
        pyro_overhead.main()
    err = capsys.readouterr().err
    assert exit.value.code == 1 and err.count("\n") == 1 and "needs a CUDA device" in err


def test_the_between_steps_table_times_the_batch_the_figures_and_the_checkpoint():
    from pyro_objects.tools.between_steps import table
    lines = table(["polygons"], "cpu", repeats=1, n_train=300).splitlines()
    header = [cell.strip() for cell in lines[2].strip("| ").split(" | ")]
    row = [cell.strip() for cell in next(line for line in lines if line.startswith("| polygons")).strip("| ").split(" | ")]
    cells = dict(zip(header, row))
    assert cells["images (batch)"] == "300 × 64² (100)"
    assert cells["batch, on the device, ms: median (range)"] == "—"  # on a CPU the images are already there
    timed = [cells[k] for k in header if k.startswith(("batch, from", "figures", "checkpoint"))]
    assert len(timed) == 3 and all(float(c.split()[0]) > 0 for c in timed)


def test_the_loop_table_times_training_steps_read_each_step_and_on_a_cpu_nothing_else():
    from pyro_objects.tools.between_steps import loop_table
    lines = loop_table(["polygons"], "cpu", steps=1, repeats=1, n_train=200, speed_name="fp32").splitlines()
    assert "fp32, blocks of 1 stage-1 steps" in lines[0]
    header = [cell.strip() for cell in lines[2].strip("| ").split(" | ")]
    cells = dict(zip(header, (c.strip() for c in lines[4].strip("| ").split(" | "))))
    assert cells["dataset"] == "polygons" and cells["batch"] == "100"
    assert float(cells["read each step"].split()[0]) > 0  # eager SVI.step reads its own loss: no other way on a CPU
    assert cells["read once a block"] == cells["the step alone"] == "—"


def test_the_pyro_host_table_counts_more_operators_for_the_elbo_than_the_plain_loss():
    from pyro_objects.tools.pyro_overhead import host_table
    lines = host_table("polygons", 1, "cpu", profiled_steps=2).splitlines()
    ops = {line.split(" | ")[0].strip("| "): int(line.split(" | ")[1].replace(",", "")) for line in lines
           if line.startswith(("| plain loss", "| ObjectsELBO"))}
    assert ops["ObjectsELBO.loss_and_grads"] > ops["plain loss, forward and backward"] > 0
    step, pyro_own, module = (float(c) for c in lines[-1].strip("| ").split(" | ")[1:])
    assert step > pyro_own > 0 and step > module > 0  # shares of the step


def test_the_batch_norm_table_scores_the_checkpoint_as_evaluate_does_and_batch_statistics_otherwise(
        tiny_cfg, train_tiny, tmp_path):
    from pyro_objects.data import Dataset, polygons
    from pyro_objects.evaluate import decomposition_scores
    from pyro_objects.runs import load_run
    from pyro_objects.tools.batch_norm import scores
    cfg = tiny_cfg.replace(obj_encoder="c8s2e-b-c8s2e-b-d32e-d18")  # batch norm in the object encoder
    train_tiny(cfg, tmp_path / "run", max_steps=3)
    d = polygons.generate(8 + 2 * cfg.batch_size, seed=5, image_size=cfg.image_size)
    held_out = Dataset("polygons", d["images"], d["amodal"], d["count"])
    rows = scores(load_run(tmp_path / "run"), held_out, n=8, batches=2)
    _, model, guide, _ = load_run(tmp_path / "run")
    expected, _ = decomposition_scores(model, guide, Dataset("polygons", d["images"][:8], d["amodal"][:8], d["count"][:8]))
    assert rows["running statistics"][0] == {k: expected[k] for k in ("mIOU", "FG-ARI", "MSE")}
    assert len(rows["batch statistics"]) == 1 and len(rows["re-estimated"]) == 2
    assert all(len(rows[way]) == 1 for way in ("the guide's calibrated", "relaxed θ to the encoder",
                                                "θ's softmax at τ to the encoder"))
    # three steps leave the running statistics near their start (mean 0, variance 1): a batch's own differ
    assert rows["batch statistics"][0]["MSE"] != expected["MSE"]


def test_recalibrated_batch_norm_holds_the_statistics_of_the_decompositions_it_saw(tiny_cfg, train_tiny, tmp_path):
    import copy
    from pyro_objects.data import polygons, to_float
    from pyro_objects.runs import load_run
    from pyro_objects.tools.batch_norm import recalibrated
    cfg = tiny_cfg.replace(obj_encoder="c8s2e-b-c8s2e-b-d32e-d18")  # batch norm in the object encoder
    train_tiny(cfg, tmp_path / "run", max_steps=3)
    _, model, guide, _ = load_run(tmp_path / "run")
    images = polygons.generate(cfg.batch_size, seed=5, image_size=cfg.image_size)["images"]
    before = [b.clone() for b in guide.state_dict().values()]
    model2, guide2 = recalibrated(model, guide, images, 1, cfg.batch_size)
    assert all(torch.equal(a, b) for a, b in zip(before, guide.state_dict().values()))  # the run's own stay
    x = to_float(images)
    with torch.no_grad():  # one batch seen: its eval-mode modes are the train-mode ones of that batch
        z_batch = copy.deepcopy(guide).train().modes(x)["z"]
        z_recalibrated, z_running = guide2.modes(x)["z"], guide.modes(x)["z"]
    assert torch.allclose(z_recalibrated, z_batch, rtol=1e-2, atol=1e-3)
    assert not torch.allclose(z_running, z_batch, rtol=1e-2, atol=1e-3)


def test_the_encoder_fed_thetas_softmax_at_a_temperature_near_zero_decomposes_as_the_one_hot_mode(tiny_cfg):
    from pyro_objects.data import polygons, to_float
    from pyro_objects.guide import Guide
    from pyro_objects.tools.batch_norm import encoder_fed
    torch.manual_seed(0)
    guide = Guide(tiny_cfg).eval()
    x = to_float(polygons.generate(4, seed=5, image_size=tiny_cfg.image_size)["images"])
    one_hot = guide.modes(x)
    for way, t, same in (("softmax", 1e-4, True), ("softmax", 1.0, False), ("relaxed", 1.0, False)):
        fed = encoder_fed(guide, way, t).modes(x)
        assert torch.equal(fed["theta"], one_hot["theta"])  # the objects stay where the mode puts them
        assert torch.allclose(fed["z"], one_hot["z"], atol=1e-5) == same, (way, t)


def test_theta_samples_of_a_sure_posterior_sit_on_its_mode_and_a_two_pixel_tie_splits_them():
    from pyro_objects.config import CONFIGS
    from pyro_objects.tools.theta_samples import sharpness, step_at
    N = 8
    sure = torch.full((50, 2, N * N), -1e4)
    sure[:, :, 27] = 0.0
    assert sharpness(sure, 0.5, N) == {"peak": 1.0, "distance": 0.0, "far": 0.0, "off_mode": 0.0, "to_mode": 0.0}
    tie = torch.full((2000, 1, N * N), -1e4)
    tie[:, :, [27, 28]] = 0.0  # two neighbours in one row, equally likely
    torch.manual_seed(0)
    r = sharpness(tie, 0.01, N)
    assert r["peak"] > 0.99 and r["far"] == 0.0
    assert 0.45 < r["off_mode"] < 0.55 and r["to_mode"] == pytest.approx(r["off_mode"])  # one pixel off, half the time
    cfg = CONFIGS["polygons"]  # τ = 1 / 2^(1e-4 · images / 100): τ = 0.5 after 1e6 images, 10,000 steps of 100
    assert step_at(cfg, 0.5) == 10_000 and step_at(cfg, 1.0) == 0 and step_at(cfg, 0.001) is None
    assert step_at(cfg.replace(batch_size=400), 0.5) == 2_500


def _checks(run_dir, rows, dataset=None):
    run_dir.mkdir(parents=True)
    lines = ["step,epoch,minutes,mIOU,aIOU,DPA,FG-ARI,MSE"] + [
        f"{1000 * (i + 1)},{i},{minutes},{miou},0.9,0.95,,{mse}" for i, (minutes, miou, mse) in enumerate(rows)]
    (run_dir / "quality.csv").write_text("\n".join(lines) + "\n")
    if dataset:
        (run_dir / "config.json").write_text(json.dumps({"dataset": dataset}))
    return run_dir


def test_time_to_quality_finds_the_first_check_at_a_target_and_whether_the_later_ones_hold_it(tmp_path):
    from pyro_objects.tools.time_to_quality import first_reach, read_checks

    checks = read_checks(_checks(tmp_path / "a", [(1.0, 0.50, 3e-3), (2.0, 0.84, 1e-3), (3.0, 0.82, 9e-4),
                                                    (4.0, 0.85, 5e-4)]))
    assert "FG-ARI" not in checks[0]  # a blank cell is not a score
    r = first_reach(checks, "mIOU", 0.83)
    assert (r["minutes"], r["step"], r["held"], r["best"], r["best_minutes"]) == (2.0, 2000, "no", 0.85, 4.0)
    assert first_reach(checks, "mIOU", 0.845)["held"] == "last check"
    assert first_reach(checks, "mIOU", 0.80)["held"] == "yes"
    assert first_reach(checks, "mIOU", 0.9)["minutes"] is None and first_reach(checks, "mIOU", 0.9)["held"] is None
    mse = first_reach(checks, "MSE", 1e-3)  # lower is better: reached from above
    assert (mse["minutes"], mse["held"], mse["best"]) == (2.0, "yes", 5e-4)
    with pytest.raises(InputError, match="FG-ARI"):
        first_reach(checks, "FG-ARI", 0.89)


def test_time_to_quality_takes_the_median_over_runs_counting_a_run_that_never_reaches_as_slowest():
    from pyro_objects.tools.time_to_quality import median_minutes

    assert median_minutes([{"minutes": 2.0}, {"minutes": 5.0}, {"minutes": None}]) == (5.0, [2.0, 5.0])
    assert median_minutes([{"minutes": 2.0}, {"minutes": None}, {"minutes": None}]) == (None, [2.0, 2.0])
    assert median_minutes([{"minutes": None}]) == (None, None)


def test_time_to_quality_reads_the_papers_targets_from_the_runs_dataset_and_refuses_bad_input(tmp_path, capsys):
    from pyro_objects.tools.time_to_quality import main as ttq

    a = _checks(tmp_path / "a", [(1.0, 0.70, 2e-3), (2.0, 0.84, 1e-3)], dataset="polygons")
    b = _checks(tmp_path / "b", [(1.5, 0.83, 2e-3), (2.5, 0.86, 1e-3)], dataset="polygons")
    ttq([str(a), str(b)])
    out = capsys.readouterr().out
    # a reaches 0.83 at its last check, so only b is known to hold it
    assert "mIOU ≥ 0.83: median 1.75 min over 2 run(s) (reached in 1.50-2.00); held by 1 of 2" in out
    assert "aIOU ≥ 0.9: median 1.25 min" in out and "DPA ≥ 0.87" in out and "MSE" not in out  # polygons: no MSE
    assert "held by 1 of 2; best 0.85 (0.84-0.86)" in out  # the median and range of the runs' best checks
    ttq([str(a), str(b), "--by", "2.2"])  # as if both had stopped at 2.2 minutes: b's last check left out
    out = capsys.readouterr().out
    assert "mIOU ≥ 0.83: median 1.75 min over 2 run(s) (reached in 1.50-2.00); held by 0 of 2; best 0.835 (0.83-0.84)" in out
    ttq([str(a), "--target", "mIOU=0.85"])
    out = capsys.readouterr().out
    assert "mIOU ≥ 0.85: median not reached over 1 run(s); held by 0 of 1" in out and "mIOU ≥ 0.83" not in out
    c = _checks(tmp_path / "c", [(1.0, 0.7, 1e-3)], dataset="clevr3")
    d = _checks(tmp_path / "d", [(1.0, 0.7, 1e-3)])  # no config.json: no dataset, no paper's numbers
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "quality.csv").write_text("step,minutes,mIOU\n1000,1.0,0.5\n2000,two,0.6\n")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "quality.csv").write_text("mIOU\n0.5\n")
    g = _checks(tmp_path / "g", [(1.0, 0.7, 1e-3)])
    (g / "config.json").write_text("{not json")
    h = _checks(tmp_path / "h", [(1.0, 0.7, 1e-3)])
    (h / "quality.csv").write_text("step,minutes,mIOU\n1000,,0.5\n")
    binary = _checks(tmp_path / "binary", [(1.0, 0.7, 1e-3)])
    (binary / "quality.csv").write_bytes(b"\x85\xff\x00step\n")
    binary_config = _checks(tmp_path / "binary-config", [(1.0, 0.7, 1e-3)])
    (binary_config / "config.json").write_bytes(b"\x85\xff")
    for argv, message in [([str(tmp_path / "none")], "no quality.csv"), ([str(a), str(c)], "different datasets"),
                          ([str(a), "--target", "IOU=0.8"], "must be one of"),
                          ([str(a), "--target", "mIOU=high"], "METRIC=NUMBER"), ([str(d)], "give targets"),
                          ([str(tmp_path / "e"), "--dataset", "polygons"], "line 3: a value is not a number"),
                          ([str(tmp_path / "f"), "--dataset", "polygons"], "no step and minutes columns"),
                          ([str(g)], "not a run's config"), ([str(h), "--dataset", "polygons"], "line 2: no step or no minutes"),
                          ([str(binary), "--dataset", "polygons"], "not a quality.csv"),
                          ([str(binary_config)], "not a run's config"),
                          ([str(a), "--by", "0.5"], "no check by 0.5 minutes"), ([str(a), "--by", "0"], "above 0")]:
        with pytest.raises(SystemExit) as stop:
            ttq(argv)
        assert message in str(stop.value.code)


def test_time_to_quality_draws_the_runs_checks_and_never_over_its_inputs(tmp_path, capsys):
    import matplotlib.pyplot as plt

    from pyro_objects.tools.time_to_quality import main as ttq
    from pyro_objects.viz import runs_quality_figure

    a = _checks(tmp_path / "a", [(1.0, 0.70, 2e-3), (2.0, 0.84, 1e-3)], dataset="polygons")
    b = _checks(tmp_path / "b", [(1.5, 0.83, 2e-3), (2.5, 0.86, 1e-3)], dataset="polygons")
    ttq([str(a), str(b), "--figure", str(tmp_path / "out" / "ttq.png")])
    assert "mIOU ≥ 0.83: median 1.75 min" in capsys.readouterr().out
    assert (tmp_path / "out" / "ttq.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = runs_quality_figure([("a", [{"minutes": 1.0, "mIOU": 0.7}, {"minutes": 2.0, "mIOU": 0.84}]),
                               ("b", [{"minutes": 1.5, "mIOU": 0.83}])], [("mIOU", 0.83), ("MSE", 1e-3)])
    mIOU, mse = fig.axes
    assert [list(line.get_xdata()) for line in mIOU.lines[:2]] == [[1.0, 2.0], [1.5]]  # a line a run
    assert list(mIOU.lines[2].get_ydata()) == [0.83, 0.83]  # the target, dashed
    assert [len(line.get_xdata()) for line in mse.lines] == [0, 0, 2]  # no MSE in the checks: the target alone
    plt.close(fig)
    before = (a / "quality.csv").read_bytes()
    for argv, message in [([str(a), "--figure", str(a / "quality.csv")], "is an input of this command"),
                          ([str(a), "--figure", str(a / "config.json")], "own file")]:
        with pytest.raises(SystemExit) as stop:
            ttq(argv)
        assert message in str(stop.value.code)
    assert (a / "quality.csv").read_bytes() == before


def test_compile_options_times_each_row_in_a_fresh_process_with_its_own_cache(monkeypatch):
    """The rows: the variant as it is, each option, then the first row's cache again, warm; a row past
    its time reads 'stopped'; each row's cache is removed afterwards."""
    from pyro_objects.tools import compile_options
    seen = []

    def row(dataset, batch, name, device, env, cache, timeout, helpers=0):
        seen.append((env, cache))
        if env:
            return None
        return {"first_step_s": 57.7 if len(seen) == 1 else 6.3, "ms": [6.5, 6.6, 6.7], "img_s": 100 / 6.6e-3}

    monkeypatch.setattr(compile_options, "row", row)
    lines = compile_options.table("polygons", 100, "fp32", "cpu", [{"TORCHINDUCTOR_MAX_AUTOTUNE": "1"}], 240).splitlines()
    assert lines[2] == "| as it is | empty | 57.7 | 6.500, 6.600, 6.700 | 15,152 |"
    assert lines[3] == "| TORCHINDUCTOR_MAX_AUTOTUNE=1 | empty | stopped after 240 s | — | — |"
    assert lines[4] == "| as it is | warm (the first row's) | 6.3 | 6.500, 6.600, 6.700 | 15,152 |"
    assert seen[0][1] == seen[2][1] != seen[1][1] and not any(os.path.exists(cache) for _, cache in seen)
    assert compile_options.options("A=1") == {"A": "1"}
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        compile_options.options("A")


def test_compile_options_measures_the_training_step():
    from pyro_objects.tools.compile_options import measure
    r = measure("polygons", 2, "fp32", "cpu")
    assert r["first_step_s"] > 0 and len(r["ms"]) == 3 and r["process_s"] > r["first_step_s"]
    assert r["img_s"] == pytest.approx(2 / (sorted(r["ms"])[1] / 1e3))


def test_compile_options_helpers_row_and_the_networks_each_helper_compiles(monkeypatch):
    """--helpers K: one more row, whose process alone is timed while K helpers compile shares of HELPED,
    networks of the step other than the position U-Net; fast.accelerate(compile_only=...) compiles just those."""
    from pyro_objects import fast
    from pyro_objects.tools import compile_options
    helped = []
    monkeypatch.setattr(compile_options, "row", lambda *args: helped.append(args[-1]) or
                        {"first_step_s": 1.0, "ms": [1.0, 1.0, 1.0], "img_s": 1.0})
    lines = compile_options.table("polygons", 100, "fp32", "cpu", [], 240, helpers=2).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| as it is", "| as it is, 2 helpers", "| as it is"]
    assert helped == [0, 2, 0]
    assert sorted(sum((compile_options.HELPED[k::2] for k in range(2)), ())) == sorted(compile_options.HELPED)
    cfg = config_for("polygons")
    model, guide = Model(cfg), Guide(cfg)
    children = dict([*model.named_children(), *guide.named_children()])
    assert set(compile_options.HELPED) < set(children) and "position" not in compile_options.HELPED
    fast.accelerate(model, guide, Speed(compile=True, cuda_graphs=False), "cpu", compile_only={"F_obj", "position"})
    compiled = {name for name, net in children.items() if getattr(net, "_compiled_call_impl", None) is not None}
    assert compiled == {"F_obj", "position"}
