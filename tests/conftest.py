import pyro
import pytest
import torch

from pyro_objects.config import POLYGONS, quick


@pytest.fixture(autouse=True)
def fresh_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture
def tiny_cfg():
    """The quick polygons config, smaller still: a 16-pixel canvas on a 32-pixel image."""
    cfg = quick(POLYGONS)
    return cfg.replace(image_size=32, canvas_size=16,
                       obj_decoder="d128e-v8x4x4-cT8e-cT8e-c4", bg_decoder="d128e-v8x4x4-cT8e-cT8e-cT8e-c3",
                       obj_encoder="c8s2e-c8s2e-d32e-d18", bg_encoder="c8s2e-c8s2e-d32e-d8",
                       position_unet=(8, 8), zeta="d32e-v2x4x4-cT4e-cT4e-cT4e-c2", batch_size=8, n_train=32, n_eval=8, epochs=2)
