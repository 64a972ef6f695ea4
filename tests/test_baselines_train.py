import csv

import pytest
import torch
from click.testing import CliRunner

from pyro_objects import runs
from pyro_objects.baselines import QUICK, load_baseline_run
from pyro_objects.baselines.train import baseline_config, train_baseline
from pyro_objects.cli import main
from pyro_objects.data import Dataset, polygons
from pyro_objects.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"vae": {"encoder": "c8s2e-c8s2e-c16s2e-d32e-d52", "decoder": "d32e-d256e-v16x4x4-cT8e-cT8e-cT8e-c3"},
        "slot-attention": QUICK["slot-attention"], "monet": QUICK["monet"]}


def tiny_data(n, seed=0):
    g = polygons.generate(n, seed=seed, image_size=32)
    return Dataset("polygons", g["images"], g["amodal"], g["count"])


def run(name, cfg, path, resume=False, **kwargs):
    return train_baseline(name, cfg, path, resume=resume, data=tiny_data(16), sizes=TINY[name], figures=False,
                          log_every=1, progress=False, **kwargs)


def losses(path):
    with open(path / "log.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize("name", list(TINY))
def test_a_stopped_and_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(name, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(batch_size=4)  # 16 images: 4 steps an epoch, 8 in all
    whole = run(name, cfg, tmp_path / "whole")
    stopped = run(name, cfg, tmp_path / "parts", max_steps=3)
    assert (stopped["step"], stopped["epoch"], stopped["batch"]) == (3, 0, 3)  # mid-epoch
    parts = run(name, None, tmp_path / "parts", resume=True)
    assert parts["baseline"] == name and parts["step"] == whole["step"] == 8 and parts["epoch"] == 2
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, parts["model"][key]), key
    assert whole["optim"]["state"].keys() == parts["optim"]["state"].keys()
    for i, state in whole["optim"]["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(parts["optim"]["state"][i][key])), (i, key)
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")  # 3 steps, then the other 5: none done twice
    assert len(losses(tmp_path / "whole")) == 8


def test_scores_during_training_go_to_quality_csv_with_aiou_blank(tiny_cfg, tmp_path):
    state = run("monet", tiny_cfg.replace(batch_size=4), tmp_path / "r", max_steps=2, eval_every=1,
                eval_data=tiny_data(4, seed=5))
    with open(tmp_path / "r" / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2] and state["step"] == 2
    assert all(r["aIOU"] == r["DPA"] == "" and 0 <= float(r["mIOU"]) <= 1 and float(r["MSE"]) > 0 for r in rows)
    assert (tmp_path / "r" / "figures" / "quality.png").is_file() and any((tmp_path / "r" / "tb").iterdir())


def test_a_baseline_run_is_told_apart_from_ours(tiny_cfg, tmp_path):
    path = tmp_path / "vae"
    run("vae", tiny_cfg, path, max_steps=1)
    cfg, model, state = load_baseline_run(path)
    assert state["baseline"] == "vae" and cfg == tiny_cfg and model.latent == 26 and not model.training
    with pytest.raises(InputError, match="already holds a run"):
        run("vae", tiny_cfg, path)
    with pytest.raises(InputError, match="holds a run of the vae baseline, not of monet"):
        run("monet", None, path, resume=True)
    with pytest.raises(InputError, match="vae baseline"):
        runs.load_run(path)
    with pytest.raises(InputError, match="vae baseline"):
        runs.resume(path)
    with pytest.raises(InputError, match="no run to resume"):
        run("vae", None, tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()


def test_the_papers_batch_sizes_unless_the_vae():
    assert baseline_config("slot-attention", "clevr3").batch_size == baseline_config("monet", "polygons").batch_size == 64
    assert baseline_config("vae", "polygons").batch_size == 100 and baseline_config("monet", "polygons", True).batch_size == 32


@pytest.mark.parametrize("name", list(TINY))
def test_sample_draws_a_generative_peers_scenes_and_refuses_the_rest_in_one_line(name, tiny_cfg, tmp_path):
    path, out = tmp_path / name, tmp_path / "samples.png"
    run(name, tiny_cfg, path, max_steps=1)
    result = CliRunner().invoke(main, ["sample", str(path), "--n", "4", "--out", str(out), "--device", "cpu"])
    if name == "slot-attention":  # decomposes, draws no scenes
        assert result.exit_code != 0 and "does not generate images" in result.output and not out.exists()
    else:
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "4 scenes" in result.output
    result = CliRunner().invoke(main, ["sample", str(path), "--front", "0", "--out", str(tmp_path / "f.png"),
                                       "--device", "cpu"])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)  # refused, not raised
    assert "Error:" in result.output and "Traceback" not in result.output and not (tmp_path / "f.png").exists()
