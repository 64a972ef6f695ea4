"""Pretrained models: export a run, read it back by name, refuse a damaged file; the shipped ones score as recorded."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pyro_objects import data as datasets
from pyro_objects import pretrained, runs
from pyro_objects.cli import main
from pyro_objects.errors import InputError
from pyro_objects.evaluate import decomposition_scores
from pyro_objects.export import FIRST, export

SHIPPED = ("clevr3", "clevr5", "multi-dsprites", "polygons")  # the models trained so far (docs/RESULTS.md, "Pretrained models")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A quick polygons run, trained one epoch by the command line, and its export."""
    root = tmp_path_factory.mktemp("pretrained")
    torch.set_num_threads(1)
    result = invoke("train", "polygons", "--quick", "--epochs", 1, "--n-train", 32, "--device", "cpu", "--out", root / "run")
    assert result.exit_code == 0, result.output
    result = invoke("export", root / "run", root / "tiny.pt", "--n", 8, "--device", "cpu")
    torch.set_num_threads(2)
    assert result.exit_code == 0, result.output
    return root


def test_the_export_holds_the_runs_networks_in_half_precision_and_what_made_them(exported):
    _, model, guide, state = runs.load_run(exported / "run")
    shipped = pretrained.read(f"pretrained:{exported / 'tiny.pt'}")
    for net, part in ((model, "model"), (guide, "guide")):
        for k, v in net.state_dict().items():
            assert shipped[part][k].dtype == v.dtype  # read back as float32
            assert torch.equal(shipped[part][k], v.half().to(v.dtype) if v.is_floating_point() else v)
    about = shipped["about"]
    assert about["commands"] == [f"pyro-objects train polygons --quick --epochs 1 --n-train 32 "
                                 "--out RUN --device cpu"]  # in the options' order
    assert about["generator_version"] == datasets.shards.VERSION and about["step"] == state["step"]
    assert set(about["scores"]) >= {"float32", "float16", f"first_{FIRST}"} and about["scores"]["images"] == 8
    assert (exported / "tiny.pt").stat().st_size < (exported / "run" / "checkpoint.pt").stat().st_size / 4  # no Adam


def test_commands_read_a_pretrained_model_and_write_beside_the_user(exported, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    spec = f"pretrained:{exported / 'tiny.pt'}"
    for args, made in ((("decompose", spec, "--n", 2, "--device", "cpu"), "tiny-decompose.png"),
                       (("sample", spec, "--n", 2, "--place", "0:10,10", "--device", "cpu"), "tiny-samples.png"),
                       (("evaluate", spec, "--n", 4, "--no-fid", "--device", "cpu"), "tiny-results.json")):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert (tmp_path / made).is_file()
    info = invoke("info", spec)
    assert info.exit_code == 0 and "pyro-objects train polygons --quick" in info.output and "float16: mIOU" in info.output
    info = invoke("info", exported / "run")  # a run: its minutes, and those its steps took
    lines = dict(line.split(": ", 1) for line in info.output.splitlines() if ": " in line)
    assert info.exit_code == 0 and 0 <= float(lines["minutes_in_steps"]) <= float(lines["minutes"])
    assert 0 <= float(lines["minutes_in_first_steps"]) <= float(lines["minutes_in_steps"])
    assert {"minutes_in_checkpoints", "minutes_in_figures", "minutes_in_checks"} <= set(lines)


def test_a_damaged_or_unchecked_file_is_refused_in_one_line(exported, tmp_path):
    bad = tmp_path / "bad.pt"
    shutil.copy(exported / "tiny.pt", bad)
    shutil.copy(exported / "tiny.sha256", tmp_path / "bad.sha256")
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    for spec, message in ((f"pretrained:{bad}", "is damaged"), ("pretrained:no-such-model", "there is no pretrained model")):
        result = invoke("decompose", spec, "--n", 1, "--out", tmp_path / "x.png")
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    (tmp_path / "bad.sha256").unlink()
    with pytest.raises(InputError, match="has no checksum file"):
        pretrained.read(f"pretrained:{bad}")


def test_an_export_that_loses_too_much_is_refused_and_writes_nothing(exported, tmp_path, one_thread):
    with pytest.raises(InputError, match="not exported"):
        export(exported / "run", tmp_path / "lossy.pt", n=8, max_drop=-1.0)
    assert not (tmp_path / "lossy.pt").exists() and not (tmp_path / "lossy.sha256").exists()
    (tmp_path / "mine.pt").write_text("not a model")
    with pytest.raises(InputError, match="is not an exported model"):
        export(exported / "run", tmp_path / "mine.pt", n=8)
    assert (tmp_path / "mine.pt").read_text() == "not a model"


def test_the_package_ships_its_models_small_enough():
    assert set(pretrained.names()) >= set(SHIPPED)
    sizes = [pretrained.path_of(name).stat().st_size for name in pretrained.names()]
    assert max(sizes) <= 5e6 and sum(sizes) <= 20e6


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_scores_its_first_held_out_images_as_recorded(name, one_thread):
    cfg, model, guide, _ = runs.load_run(f"pretrained:{name}")
    recorded = pretrained.about(name)["scores"][f"first_{FIRST}"]
    data = datasets.load(cfg.dataset, "eval", FIRST, seed=0, cfg=cfg)
    scores, _ = decomposition_scores(model, guide, data, FIRST, "cpu")
    assert abs(scores["mIOU"] - recorded["mIOU"]) <= 0.02, (scores["mIOU"], recorded["mIOU"])


def test_a_wheel_built_from_the_tree_contains_the_models(tmp_path):
    root, tree = Path(__file__).parents[1], tmp_path / "tree"  # built from a copy: no build/ left in the checkout
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tree / name)
    shutil.copytree(root / "pyro_objects", tree / "pyro_objects", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    files = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for name in SHIPPED:
        assert f"pyro_objects/pretrained/{name}.pt" in files and f"pyro_objects/pretrained/{name}.sha256" in files
