import json

import pytest
import torch

from pyro_objects import runs
from pyro_objects.config import POLYGONS
from pyro_objects.errors import InputError
from pyro_objects.files import atomic_write


def test_a_new_run_takes_its_learning_rate_and_cache(tmp_path):
    from pyro_objects.data import load, shards
    shards.make("polygons", [("train", load("polygons", "train", 4))], tmp_path / "cache")
    run = runs.start(POLYGONS, tmp_path / "r", seed=3, lr=1e-4, cache=tmp_path / "cache")
    assert (run.cfg.lr, run.lr, run.stage_2_lr, run.seed, run.state) == (1e-4, 1e-4, 1e-4, 3, None)
    assert run.cache == str((tmp_path / "cache").resolve())
    assert run.cache_fingerprint == shards.fingerprint(tmp_path / "cache")
    with pytest.raises(InputError, match="not a dataset cache"):
        runs.start(POLYGONS, tmp_path / "r", cache=tmp_path)


def test_a_resumed_run_goes_on_from_its_checkpoint(tiny_cfg, tmp_path, train_tiny):
    train_tiny(tiny_cfg, tmp_path / "r", max_steps=2, seed=5)
    run = runs.resume(tmp_path / "r")
    assert run.seed == 5 and run.lr == tiny_cfg.lr and run.state["step"] == 2 and run.cfg == tiny_cfg
    run = runs.resume(tmp_path / "r", lr=2e-5, weights={"beta_z": 7.0}, scene_prior_epochs=3, n_train=16)
    assert (run.lr, run.stage_2_lr, run.cfg.beta_z) == (2e-5, 2e-5, 7.0)
    assert (run.cfg.epochs, run.cfg.hyperprior_epochs, run.cfg.n_train) == (1 + 3, 3, 16)  # after the started epoch 0


def test_configs_written_before_the_speed_flags_moved_out_still_load():
    saved = {**json.loads(json.dumps(POLYGONS.__dict__)), "precision": "bf16", "compile": True, "cache": ""}
    assert runs.config_from_dict(saved) == POLYGONS
    with pytest.raises(InputError, match="unknown fields: wings"):
        runs.config_from_dict({**saved, "wings": 2})


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")
    with pytest.raises(InputError, match="cannot write .*results.json: disk full"):
        atomic_write(path, fails)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]
    atomic_write(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_an_atomic_write_into_a_missing_folder_names_the_folder(tmp_path):
    """torch.save reports a folder it cannot write in as a RuntimeError; the write says which file and why."""
    with pytest.raises(InputError, match="cannot write .*model.pt: No such file or directory .*gone does not exist"):
        atomic_write(tmp_path / "gone" / "model.pt", lambda tmp: torch.save({"w": 1}, tmp))
    assert not (tmp_path / "gone").exists()


def test_a_loaded_run_has_the_checkpoints_networks_in_eval_mode(tiny_cfg, tmp_path, train_tiny):
    state = train_tiny(tiny_cfg, tmp_path / "r", max_steps=2)
    cfg, model, guide, loaded = runs.load_run(tmp_path / "r")
    assert cfg == tiny_cfg and not model.training and not guide.training
    for name, tensor in model.state_dict().items():  # ours keeps a moving average of the weights: a loaded run reads it
        assert torch.equal(tensor, state["average"]["model"][name]), name
    assert not runs.has_scene_prior(loaded)

