import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pyro_objects.cli import main
from pyro_objects.config import POLYGONS, quick
from pyro_objects.data import load, shards
from pyro_objects.errors import InputError
from pyro_objects.runs import resume, start
from pyro_objects.train import train


@pytest.fixture
def cache(tmp_path):
    result = CliRunner().invoke(main, ["data", "make", "polygons", "--n", "40", "--n-eval", "10",
                                       "--shard-size", "16", "--out", str(tmp_path / "cache"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return tmp_path / "cache"


def test_a_cache_holds_what_the_generator_draws(cache):
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["splits"]["train"]["images"] == 40 and len(manifest["splits"]["train"]["shards"]) == 3
    for split, n in (("train", 40), ("eval", 10)):
        cached, fresh = load("polygons", split, n, cache=cache), load("polygons", split, n)
        assert torch.equal(cached.images, fresh.images) and torch.equal(cached.amodal, fresh.amodal)
        assert torch.equal(cached.count, fresh.count)


def test_a_shard_is_a_ground_truth_file_for_score(cache):
    with np.load(cache / "eval-00000.npz") as f:
        amodal, count = f["amodal"], f["count"]
    pred = cache.parent / "pred.npz"
    depth = np.broadcast_to(np.linspace(0.9, 0.1, amodal.shape[1]), amodal.shape[:2])
    np.savez(pred, alpha=amodal.astype(np.float32), depth=depth)
    result = CliRunner().invoke(main, ["score", str(cache / "eval-00000.npz"), str(pred)])
    assert result.exit_code == 0 and "mIOU   1.0000" in result.output, result.output


def test_a_corrupt_shard_is_named_and_never_used(cache):
    shard = cache / "train-00001.npz"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="train-00001.npz fails its checksum"):
        shards.read(cache, "polygons", "train")
    assert shards.read(cache, "polygons", "train", 16)["images"].shape[0] == 16  # the good first shard still serves
    result = CliRunner().invoke(main, ["train", "polygons", "--quick", "--n-train", "40", "--data", str(cache),
                                       "--device", "cpu", "--out", str(cache.parent / "run")])
    assert result.exit_code != 0 and "train-00001.npz fails its checksum" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (cache.parent / "run" / "checkpoint.pt").exists()


def test_the_wrong_cache_is_refused(cache, tmp_path):
    with pytest.raises(InputError, match="holds 'polygons', not 'clevr3'"):
        shards.read(cache, "clevr3", "train")
    with pytest.raises(InputError, match="fewer than the 100"):
        shards.read(cache, "polygons", "train", 100)
    with pytest.raises(InputError, match="no manifest.json"):
        shards.read(tmp_path, "polygons", "train")


def test_training_reads_the_cache_and_a_resumed_run_goes_on_reading_it(cache):
    cfg = quick(POLYGONS).replace(n_train=32, epochs=2, batch_size=16, hyperprior_epochs=0)
    state = train(start(cfg, cache.parent / "run", cache=cache), max_steps=2, figures=False, progress=False)
    assert state["step"] == 2 and state["cache"] == str(cache.resolve())
    assert state["cache_fingerprint"] == shards.fingerprint(cache)
    (cache / "manifest.json").unlink()  # a resumed run reads the cache it started with
    with pytest.raises(InputError, match="which is not there: give its new place with --data DIR"):
        train(resume(cache.parent / "run"), figures=False, progress=False)


def test_data_make_with_n_0_writes_the_eval_split_alone(tmp_path):
    result = CliRunner().invoke(main, ["data", "make", "polygons", "--n", "0", "--n-eval", "3", "--out", str(tmp_path),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert list(shards.read_manifest(tmp_path)["splits"]) == ["eval"]
    assert len(shards.read(tmp_path, "polygons", "eval")["images"]) == 3


def test_locate_cache_finds_a_moved_cache_by_its_checksums(cache, tmp_path):
    import shutil
    from pyro_objects.runs import locate_cache
    shutil.copytree(cache, tmp_path / "moved")
    known = shards.fingerprint(cache)
    assert shards.fingerprint(tmp_path / "moved") == known
    assert locate_cache({"cache": str(cache), "cache_fingerprint": known}, None, "RUN") == (str(cache), known)
    assert locate_cache({"cache": None}, None, "RUN") == (None, None)
    with pytest.raises(InputError, match="generated images"):
        locate_cache({"cache": None}, tmp_path / "moved", "RUN")
    older = {"cache": str(cache)}  # a checkpoint from before fingerprints: checked against the cache itself
    assert locate_cache(older, None, "RUN") == (str(cache), known)
    assert locate_cache(older, tmp_path / "moved", "RUN") == (str((tmp_path / "moved").resolve()), known)
    shutil.rmtree(cache)
    with pytest.raises(InputError, match="put the cache back"):
        locate_cache(older, tmp_path / "moved", "RUN")
    with pytest.raises(InputError, match="is not there"):
        locate_cache({"cache": str(cache), "cache_fingerprint": known}, None, "RUN")
