import pyro
import pytest
import torch

from pyro_objects.config import POLYGONS, quick


@pytest.fixture(autouse=True, scope="session")
def features_cache(tmp_path_factory):
    """Held-out Inception features go to a directory of the test session, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYRO_OBJECTS_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def fresh_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread(fresh_state):
    """For tiny networks, whose steps a second thread slows (many times over on a busy machine)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(2)


@pytest.fixture
def tiny_cfg():
    """The quick polygons config, smaller still: a 16-pixel canvas on a 32-pixel image."""
    cfg = quick(POLYGONS)
    return cfg.replace(image_size=32, canvas_size=16,
                       obj_decoder="d128e-v8x4x4-cT8e-cT8e-c4", bg_decoder="d128e-v8x4x4-cT8e-cT8e-cT8e-c3",
                       obj_encoder="c8s2e-c8s2e-d32e-d18", bg_encoder="c8s2e-c8s2e-d32e-d8",
                       position_unet=(8, 8), zeta="d32e-v2x4x4-cT4e-cT4e-cT4e-c2", batch_size=8, n_train=32, n_eval=8, epochs=2)


@pytest.fixture
def train_tiny():
    """train() quietly on n polygons images: train_tiny(cfg, path, n=32, resume=False, **kwargs) -> the final state.
    With resume, cfg is unused and lr, weights, scene_prior_epochs, n_train go to runs.resume; otherwise seed
    and lr go to runs.start; the rest of kwargs to train."""
    from pyro_objects import runs
    from pyro_objects.data import Dataset, polygons
    from pyro_objects.train import train

    def run(cfg, path, n=32, resume=False, seed=0, lr=None, weights=None, scene_prior_epochs=None, n_train=None,
            **kwargs):
        size = cfg.image_size if cfg is not None else runs.load_checkpoint(path)["config"]["image_size"]
        d = polygons.generate(n, seed=0, image_size=size)
        data = Dataset("polygons", d["images"], d["amodal"], d["count"])
        r = runs.resume(path, lr, weights, scene_prior_epochs, n_train) if resume else runs.start(cfg, path, seed, lr)
        return train(r, data=data, figures=False, progress=False, log_every=1, **kwargs)
    return run
