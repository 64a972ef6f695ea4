"""A step replayed as a CUDA graph is the eager step. These run only where there is a GPU."""
import pytest
import torch

from pyro_objects.data import Dataset, polygons
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.train import stage_1_step, stage_svi

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def steps(cfg, x, n):
    """Losses and final weights of n stage-1 steps from the same start, seeded per step as training is."""
    torch.manual_seed(0)
    model, guide = Model(cfg).cuda(), Guide(cfg).cuda()
    _, svi, elbo = stage_svi(1, cfg, model, guide, cfg.lr)
    step = stage_1_step(svi, elbo, cfg, "cuda")
    losses = []
    for i in range(n):
        torch.manual_seed(100 + i)
        losses.append(step(x[i % 2], temperature=1.0 / (1 + i), sigma=0.01 * (1 + i)))
    return losses, torch.cat([p.detach().flatten() for m in (model, guide) for p in m.parameters()])


def test_graphed_steps_take_the_eager_steps(tiny_cfg):
    x = torch.rand(2, tiny_cfg.batch_size, 3, tiny_cfg.image_size, tiny_cfg.image_size, device="cuda")
    eager_losses, eager_weights = steps(tiny_cfg.replace(cuda_graphs=False), x, 5)
    graph_losses, graph_weights = steps(tiny_cfg.replace(cuda_graphs=True), x, 5)
    # new batches, temperatures and σ reach the replays: the losses move as the eager ones do
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4)
    assert torch.allclose(graph_weights, eager_weights, atol=1e-5, rtol=1e-4)


def test_a_graphed_run_resumes_where_an_uninterrupted_one_ends(tiny_cfg, tmp_path):
    from pyro_objects.train import train
    d = polygons.generate(32, seed=0, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    kwargs = dict(device="cuda", data=data, figures=False, progress=False)
    whole = train(tiny_cfg, tmp_path / "whole", max_steps=6, **kwargs)
    train(tiny_cfg, tmp_path / "parts", max_steps=3, **kwargs)
    parts = train(tiny_cfg, tmp_path / "parts", max_steps=6, resume=True, **kwargs)
    assert parts["step"] == whole["step"] == 6
    for name, w in whole["model"].items():
        assert torch.allclose(parts["model"][name], w, atol=1e-5, rtol=1e-4), name


def test_a_graphed_run_steps_its_learning_rate_down_as_an_eager_run_does(tiny_cfg, tmp_path):
    from pyro_objects.train import train
    d = polygons.generate(32, seed=0, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    cfg = tiny_cfg.replace(epochs=3, hyperprior_epochs=0, lr_decay_epochs=(1, 2), lr_decay=0.1)  # 4 steps an epoch
    kwargs = dict(device="cuda", data=data, figures=False, progress=False)
    eager = train(cfg.replace(cuda_graphs=False), tmp_path / "eager", **kwargs)
    graphed = train(cfg, tmp_path / "graphed", **kwargs)  # a graph recorded at the first rate must not replay it later
    assert graphed["lr"] == eager["lr"] == pytest.approx(cfg.lr * 0.01)
    for name, w in eager["model"].items():
        assert torch.allclose(graphed["model"][name], w, atol=1e-5, rtol=1e-4), name
