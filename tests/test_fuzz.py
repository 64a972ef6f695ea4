"""Bad input never costs a file or shows a traceback: each command, given input that makes no sense,
exits non-zero with one line, and every file that was there before is byte for byte as it was."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_objects.cli import main
from pyro_objects.data import polygons
from pyro_objects.runs import load_checkpoint


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder holding a trained run, a corrupt one, a cache, ground-truth and prediction files and images."""
    root = tmp_path_factory.mktemp("fuzz")
    ok = CliRunner().invoke(main, ["train", "polygons", "--quick", "--epochs", "1", "--n-train", "64", "--device", "cpu",
                                   "--out", str(root / "run")])
    assert ok.exit_code == 0, ok.output
    ok = CliRunner().invoke(main, ["data", "make", "polygons", "--n", "16", "--n-eval", "8", "--out", str(root / "cache"),
                                   "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    (root / "corrupt").mkdir()
    (root / "corrupt" / "checkpoint.pt").write_bytes(os.urandom(300))
    (root / "truncated").mkdir()
    (root / "truncated" / "checkpoint.pt").write_bytes((root / "run" / "checkpoint.pt").read_bytes()[:1000])
    (root / "empty-ckpt").mkdir()
    (root / "empty-ckpt" / "checkpoint.pt").write_bytes(b"")
    (root / "empty").mkdir()
    g = polygons.generate(6, seed=3)
    gt = {"images": g["images"].numpy(), "amodal": g["amodal"].numpy(), "count": g["count"].numpy()}
    np.savez(root / "gt.npz", **gt)
    alpha = gt["amodal"].astype(np.float32)
    depth = np.tile(np.linspace(0.9, 0.1, alpha.shape[1], dtype=np.float32), (6, 1))
    np.savez(root / "pred.npz", alpha=alpha, depth=depth)
    bad = {
        "pred-nan": dict(alpha=np.where(alpha > 0, np.nan, alpha), depth=depth),
        "pred-inf-depth": dict(alpha=alpha, depth=np.where(depth > 0.5, np.inf, depth)),
        "pred-alpha-2": dict(alpha=alpha * 2, depth=depth),
        "pred-recon-255": dict(alpha=alpha, depth=depth, recon=np.full((6, 64, 64, 3), 200.0, np.float32)),
        "pred-shape": dict(alpha=alpha[:, :, :10], depth=depth),
        "pred-depth-shape": dict(alpha=alpha, depth=depth[:, :1]),
        "pred-str": dict(alpha=np.array(["a"] * 6), depth=depth),
        "pred-no-alpha": dict(depth=depth),
        "gt-n": dict(images=gt["images"][:4], amodal=gt["amodal"], count=gt["count"]),
        "gt-hw": dict(images=gt["images"][:, :32], amodal=gt["amodal"], count=gt["count"]),
        "gt-zero": dict(amodal=gt["amodal"][:0], count=gt["count"][:0]),
        "gt-count": dict(amodal=gt["amodal"], count=gt["count"] + 5),
        "gt-float": dict(amodal=gt["amodal"].astype(np.float32) * 0.5, count=gt["count"]),
        "images-small": dict(images=np.zeros((2, 32, 32, 3), np.uint8)),
        "images-float": dict(images=np.zeros((2, 64, 64, 3), np.float32)),
    }
    for name, arrays in bad.items():
        np.savez(root / f"{name}.npz", **arrays)
    (root / "random.npz").write_bytes(os.urandom(500))
    (root / "bad.png").write_bytes(b"\x89PNG not really")
    (root / "folder").mkdir()
    (root / "folder" / "a.png").write_bytes(b"junk")
    (root / "folder" / "b.jpg").write_bytes(os.urandom(64))
    return root


CASES = [  # each a command line; {} is the place's folder
    # train
    "train polygons --quick --batch-size 0 --out {}/new", "train polygons --quick --batch-size -1 --out {}/new",
    "train polygons --quick --epochs 0 --out {}/new", "train polygons --quick --n-train 0 --out {}/new",
    "train polygons --quick --set beta_z=nan --out {}/new", "train polygons --quick --set sigma=0.01 --out {}/new",
    "train polygons --quick --set obj_decoder=garbage --out {}/new", "train polygons --quick --set image_size=30 --out {}/new",
    "train polygons --quick --set slots=0 --out {}/new", "train polygons --quick --set slots=two --out {}/new",
    "train polygons --quick --set nonsense --out {}/new", "train polygons --quick --set batch_size=4 --out {}/new",
    "train polygons --quick --set lr=inf --out {}/new", "train polygons --quick --set hyperprior_epochs=99 --out {}/new",
    "train mnist --out {}/new", "train polygons --quick --out {}/run", "train polygons --quick --resume --out {}/missing",
    "train polygons --quick --resume --out {}/run --set beta_z=nan", "train polygons --quick --resume --out {}/run --epochs 9",
    "train polygons --quick --resume --out {}/run --set slots=3", "train polygons --quick --resume --out {}/corrupt",
    "train polygons --quick --resume --out {}/truncated", "train polygons --quick --resume --out {}/empty-ckpt",
    "train polygons --quick --data {}/empty --out {}/new", "train polygons --quick --time-budget soon --out {}/new",
    "train folder:{}/empty --quick --out {}/new", "train folder:{}/folder --quick --out {}/new",
    "train polygons --quick --scene-prior 2 --out {}/new", "train polygons --quick --lr -1 --out {}/new",
    "train polygons --quick --eval-every 0 --out {}/new",
    # sample, interpolate, decompose
    "sample {}/run --n 0", "sample {}/missing", "sample {}/corrupt", "sample {}/truncated", "sample {}/run --place x",
    "sample {}/run --place 0:999,1", "sample {}/run --front 7", "sample {}/run --out {}/run/checkpoint.pt",
    "sample {}/run --out {}/gt.npz", "sample {}/run --out {}/run", "interpolate {}/run --a {}/bad.png --b {}/bad.png",
    "interpolate {}/run --a {}/gt.npz:0 --b {}/gt.npz:1 --steps 1", "interpolate {}/corrupt --a x --b y",
    "decompose {}/run --n -3", "decompose {}/run --n 0", "decompose {}/run --input {}/gt.npz --output {}/gt.npz",
    "decompose {}/run --input {}/gt.npz --out {}/gt.npz", "decompose {}/run --output {}/cache/train-00000.npz",
    "decompose {}/run --input {}/images-small.npz", "decompose {}/run --input {}/images-float.npz",
    "decompose {}/run --input {}/random.npz", "decompose {}/run --input {}/missing.npz",
    "decompose {}/run --out {}/run/config.json", "decompose {}/run --out {}/figure.txt", "sample {}/run --out {}/s.npz",
    "decompose {}/run --batch-size 0 --output {}/p.npz",
    # evaluate and score
    "evaluate {}/run --json {}/run/checkpoint.pt --no-fid", "evaluate {}/run --json {}/gt.npz --no-fid",
    "evaluate {}/run --n 0 --no-fid", "evaluate {}/run --fid-n 1 --n 2", "evaluate {}/missing", "evaluate {}/corrupt",
    "score {}/gt.npz {}/pred.npz --json {}/gt.npz", "score {}/gt.npz {}/pred.npz --json {}/run/checkpoint.pt",
    "score {}/gt.npz {}/pred.npz --threshold 2", "score {}/gt.npz {}/missing.npz", "score {}/random.npz {}/pred.npz",
    *[f"score {{}}/gt.npz {{}}/{name}.npz" for name in ("pred-nan", "pred-inf-depth", "pred-alpha-2", "pred-recon-255",
                                                        "pred-shape", "pred-depth-shape", "pred-str", "pred-no-alpha",
                                                        "random", "gt")],
    *[f"score {{}}/{name}.npz {{}}/pred.npz" for name in ("gt-n", "gt-hw", "gt-zero", "gt-count", "gt-float", "pred")],
    # data, bench, profile
    "data make polygons --n 0 --n-eval 0 --out {}/newcache", "data make multi-dsprites --n 8 --n-eval 4 --out {}/cache",
    "data make polygons --n 8 --n-eval 4 --out {}/run", "data make folder:{}/folder --out {}/newcache",
    "data make polygons --shard-size 0 --out {}/newcache", "data show mnist", "data show polygons --n 0",
    "data show polygons --out {}/run/checkpoint.pt", "data show polygons --split test",
    "bench --quick --batch-sizes 0 --device cpu", "bench --quick --batch-sizes a --device cpu",
    "bench --quick --repeats 0 --device cpu", "bench --quick --variants fp16 --device cpu",
    "bench --quick --data-n 0 --device cpu", "bench --quick --json {}/gt.npz --device cpu",
    "profile --quick --steps 0 --device cpu", "profile --quick --variant fp16 --device cpu",
    "train polygons --quick --device cuda:7 --out {}/new",
    # baselines
    "baseline train iodine polygons --out {}/new", "baseline train vae mnist --out {}/new",
    "baseline train vae polygons --batch-size 0 --out {}/new", "baseline train monet polygons --out {}/run",
]


def snapshot(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "tb" not in p.parts}


def refused(result):
    """Whether a command was refused in one line, without a traceback."""
    lines = result.output.strip().splitlines()
    return (result.exit_code != 0 and "Traceback" not in result.output and len(lines) >= 1
            and (result.exception is None or isinstance(result.exception, SystemExit)))


@pytest.mark.parametrize("line", CASES)
def test_bad_input_is_refused_in_one_line_and_loses_nothing(place, line):
    before = snapshot(place)
    args = line.replace("{}", str(place)).split()
    if args[0] not in ("bench", "profile", "data", "score") and "--device" not in args:
        args += ["--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert refused(result), f"{line}\n{result.output}\n{result.exception!r}"
    assert result.output.strip().splitlines()[-1].startswith(("Error", "Usage", "Try")), result.output
    after = snapshot(place)
    changed = [str(p) for p, data in before.items() if after.get(p) != data]
    assert not changed, f"{line} changed {changed}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(0, 7), min_size=0, max_size=5),
       dtype=st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "float16"]),
       fill=st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e30, float("nan"), float("inf")]))
def test_any_predictions_file_is_scored_or_refused_in_one_line(place, tmp_path, shape, dtype, fill):
    with np.errstate(invalid="ignore", over="ignore"):
        alpha = np.full(shape, fill).astype(dtype)
    np.savez(tmp_path / "p.npz", alpha=alpha, depth=np.zeros(shape[:2], np.float32))
    result = CliRunner().invoke(main, ["score", str(place / "gt.npz"), str(tmp_path / "p.npz")])
    assert result.exit_code == 0 or refused(result), result.output
    assert "Traceback" not in result.output


def test_training_killed_at_any_moment_resumes_to_where_an_uninterrupted_run_ends(tmp_path):
    """SIGKILL at random moments (mid-epoch, or while a checkpoint is written), then --resume: the same
    parameters, bit for bit, as a run never stopped."""
    cmd = [sys.executable, "-m", "pyro_objects", "train", "polygons", "--quick", "--epochs", "4", "--n-train", "64",
           "--batch-size", "16", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, env=env, timeout=600)
    whole = load_checkpoint(tmp_path / "whole")
    rng = random.Random(0)
    for trial in range(2):
        out = tmp_path / f"killed{trial}"
        proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # kill a moment after the call's first checkpoint (epoch 1): mid-epoch, or while stage 1's last is written
        while not ((out / "checkpoint.pt").exists() and load_checkpoint(out)["epoch"] >= 1):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert load_checkpoint(out)["epoch"] < 4  # killed before its end
        while load_checkpoint(out)["epoch"] < 4:
            done = subprocess.run(cmd[:5] + ["--device", "cpu", "--resume", "--out", str(out)], capture_output=True,
                                  text=True, env=env, timeout=600)
            assert done.returncode == 0, done.stderr[-2000:]
        killed = load_checkpoint(out)
        assert killed["step"] == whole["step"] == 16
        for part in ("model", "guide"):
            for name, tensor in whole[part].items():
                assert torch.equal(tensor, killed[part][name]), f"trial {trial}: {part}.{name}"
