"""Data parallelism on CPUs: 2 processes (gloo), launched by torchrun through the CLI."""
import os
import subprocess
import sys

import pyro
import torch

from pyro_objects import data
from pyro_objects.config import POLYGONS, quick
from pyro_objects.elbo import ObjectsELBO, aggregate_l1
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.runs import load_checkpoint, resume, save_checkpoint
from pyro_objects.schedules import epoch_order_seed, sigma, step_seed, temperature
from pyro_objects.train import train


def reference(cfg, seed=0, world=2):
    """A single process doing what the `world` processes do together: each half-batch with
    that rank's draws, the θ penalty over the whole batch, gradients summed, one Adam step."""
    torch.manual_seed(seed)
    model, guide = Model(cfg), Guide(cfg)
    images = data.load(cfg.dataset, "train", cfg.n_train, seed)
    adam = torch.optim.Adam([*model.parameters(), *guide.parameters()], cfg.lr)
    beta = {"y": cfg.beta_y, "z_bg": cfg.beta_bg, "z": cfg.beta_z, "d": cfg.beta_d}
    elbo = ObjectsELBO(beta=beta, theta_penalty=0.0)
    local, step = cfg.batch_size // world, 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(cfg.n_train, generator=torch.Generator().manual_seed(epoch_order_seed(seed, epoch)))
        for batch in range(cfg.n_train // cfg.batch_size):
            for r in range(world):
                x = images.batch(order[batch * cfg.batch_size + r * local:][:local])
                torch.manual_seed(step_seed(seed, step, r))
                elbo.differentiable_loss(model, guide, x, temperature=temperature(cfg, step * cfg.batch_size),
                                         sigma=sigma(cfg, epoch)).backward()
            x = images.batch(order[batch * cfg.batch_size:][:cfg.batch_size])
            probs = torch.softmax(guide.theta_logits(x), -1)
            (cfg.theta_penalty * aggregate_l1(probs)).backward()
            adam.step()
            adam.zero_grad(set_to_none=False)
            step += 1
    return model, guide


def test_two_processes_train_like_one_process_on_the_global_batch_and_resume_in_one(tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "pyro_objects", "train", "polygons", "--quick", "--epochs", "1", "--n-train", "64",
           "--device", "cpu", "--out", str(run_dir)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(run_dir)
    assert state["step"] == 2
    pyro.clear_param_store()
    cfg = quick(POLYGONS).replace(epochs=1, n_train=64)
    model, guide = reference(cfg)
    for part, module in (("model", model), ("guide", guide)):
        for name, p in module.named_parameters():
            assert torch.allclose(state[part][name], p.detach(), rtol=1e-4, atol=1e-6), f"{part}.{name}"
    # Resumable on any process count: the two processes' checkpoint goes on in one.
    state["config"]["epochs"] = 2
    save_checkpoint(run_dir, state)
    resumed = train(resume(run_dir), figures=False, progress=False)
    assert (resumed["epoch"], resumed["step"]) == (2, 4)
    assert all(torch.isfinite(t).all() for t in resumed["model"].values())
