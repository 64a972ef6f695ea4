"""Throughput: training steps, decomposition, sampling and data generation, in images/s.

    pyro-objects bench polygons --batch-sizes 100,2000 --variants fp32+graphs,bf16+compile+channels_last+graphs

Each variant is a `Speed` (`variant`); a row times the training step that `train` takes
with it (`train.Stage`: SVI.step, or its CUDA graph), and beside it `plain_loss`, the
objective of elbo.py written as one plain PyTorch function: the same networks, the same
random draws in the same order, no Pyro. It is the yardstick of Pyro's per-step overhead,
and a check that the Pyro program computes what we think it does (tests/test_bench.py).
"""
import json
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch

from .. import data as datasets
from .. import fast
from ..compositor import place
from ..config import Speed
from ..decompose import decompose
from ..elbo import aggregate_l1, binary_alpha_penalty, slot_overlap
from ..errors import InputError
from ..files import atomic_write
from ..guide import Guide
from ..model import Model, scalar_like
from ..train import Stage


def plain_loss(model, guide, x, temperature, sigma, elbo):
    """The stage-1 loss of `elbo` on x, without Pyro. Draws in the guide's order, so
    with the same RNG state it returns the same number as `elbo.differentiable_loss`."""
    cfg, beta = model.cfg, elbo.beta
    B, J, N = x.shape[0], cfg.slots, cfg.image_size
    q_bg = guide.q_z_bg(x)
    z_bg = q_bg.rsample()
    temperature, sigma = scalar_like(temperature, x), scalar_like(sigma, x)  # as Model's
    q_theta = dist.RelaxedOneHotCategorical(temperature, logits=guide.theta_logits(x))
    theta = q_theta.rsample()
    q_z, q_d = guide.q_z_d(x, theta)
    z, d = q_z.rsample(), q_d.rsample()
    placed = place(model.draw_objects(z), theta.reshape(B, J, N, N))
    x_mean = model.blend(placed, d, model.draw_background(z_bg[:, 0]))
    standard = dist.Normal(x.new_zeros(()), x.new_ones(()))
    prior_d = dist.TransformedDistribution(standard, q_d.transforms)
    loss = -dist.Normal(x_mean, sigma).log_prob(x).sum()
    loss = loss + beta.get("z_bg", 1.0) * (q_bg.log_prob(z_bg) - standard.log_prob(z_bg).sum(-1)).sum()
    loss = loss + beta.get("z", 1.0) * (q_z.log_prob(z) - standard.log_prob(z).sum(-1)).sum()
    loss = loss + beta.get("d", 1.0) * (q_d.log_prob(d) - prior_d.log_prob(d)).sum()
    loss = loss + elbo.theta_penalty * aggregate_l1(q_theta.probs)
    if elbo.alpha_penalty:
        loss = loss + elbo.alpha_penalty * binary_alpha_penalty(model.draw_objects(z)[:, :, 3])
    if elbo.slot_overlap:
        loss = loss + elbo.slot_overlap * slot_overlap(q_theta.probs)
    return loss


def plain_training_step(model, guide, x, temperature, sigma, elbo):
    """A function that takes one step on `plain_loss` with one torch Adam over every parameter (fused on a
    GPU, as `fast.FusedAdam` runs it)."""
    params = [p for m in (model, guide) for p in m.parameters()]
    adam = torch.optim.Adam(params, lr=model.cfg.lr, fused=all(p.is_cuda for p in params) or None)

    def step():
        adam.zero_grad(set_to_none=True)
        plain_loss(model, guide, x, temperature, sigma, elbo).backward()
        adam.step()
    return step


def seconds(fn, device):
    """Seconds of one call of fn(), the GPU's work included."""
    if device != "cpu":
        torch.cuda.synchronize()
    tick = time.perf_counter()
    fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - tick


def median_seconds(fn, device, repeats, warmup):
    """Median seconds of fn() over repeats, after warmup calls."""
    for _ in range(warmup):
        fn()
    return sorted(seconds(fn, device) for _ in range(repeats))[repeats // 2]


def variant(name):
    """The Speed of a variant: a precision (fp32, bf16) and flags (compile, channels_last, graphs: CUDA
    graphs) joined by '+', e.g. 'bf16+compile'. Flags it does not name are off; fp32 unless bf16."""
    speed = Speed(cuda_graphs=False)
    for part in name.split("+"):
        if part in ("fp32", "bf16"):
            speed = speed.replace(precision=part)
        elif part in ("compile", "channels_last"):
            speed = speed.replace(**{part: True})
        elif part == "graphs":
            speed = speed.replace(cuda_graphs=True)
        else:
            raise InputError(f"unknown part {part!r} of variant {name!r}: use fp32 or bf16, compile, channels_last, graphs")
    return speed


def bench(cfg, device="cpu", batch_sizes=(100,), repeats=20, warmup=5, variants=("fp32",), data_n=None):
    """One row of measurements per batch size and variant (see `variant`): images/s of a training
    step (Pyro's SVI and plain PyTorch), decomposition, sampling and data generation (data_n images
    a call; default the batch size), peak memory, and the seconds of the first training step, which
    compiles the networks and records the CUDA graph (what a run pays at its start; with the
    compiler's cache empty, as on a fresh machine, or warm)."""
    temperature, sigma = 1.0, cfg.sigma[0]
    speeds = {name: variant(name) for name in variants}  # a bad name fails before any timing
    rows = []
    for B, name in [(B, v) for B in batch_sizes for v in variants]:
        speed = speeds[name]
        # A compiled network compiles on its first call in each grad mode (TORCH_LOGS=recompiles shows
        # none after it): each row starts afresh, as a run of its own would, and warms up at least twice.
        torch.compiler.reset()
        warm = max(warmup, 2) if speed.compile else warmup
        pyro.clear_param_store()
        torch.manual_seed(0)
        model, guide = fast.accelerate(Model(cfg).to(device), Guide(cfg).to(device), speed, device)
        x = datasets.load(cfg.dataset, "eval", B, device=device).batch(torch.arange(B), device)
        if device != "cpu":
            torch.cuda.reset_peak_memory_stats()
        stage = Stage(1, cfg, model, guide, cfg.lr, device, speed)  # as training steps
        with pyro.validation_enabled(False):  # as training runs: argument checks read values on the host
            t_first = seconds(lambda: stage.step(x, temperature, sigma), device)
            t_svi = median_seconds(lambda: stage.step(x, temperature, sigma), device, repeats, warm - 1)
            plain_step = plain_training_step(model, guide, x, temperature, sigma, stage.elbo)
            t_plain = median_seconds(plain_step, device, repeats, warm)
            with torch.no_grad():
                t_decompose = median_seconds(lambda: decompose(model, guide, x), device, repeats, warm)
                t_sample = median_seconds(lambda: model(n=B, temperature=cfg.min_temperature), device, repeats, warm)
        n = data_n or B
        t_data = median_seconds(lambda: datasets.load(cfg.dataset, "eval", n, device=device), device, max(3, repeats // 4), 1)
        rows.append({
            "dataset": cfg.dataset, "device": device_name(device), "batch": B, "variant": name,
            "train_img_s": B / t_svi, "plain_train_img_s": B / t_plain, "pyro_overhead": t_svi / t_plain,
            "decompose_img_s": B / t_decompose, "sample_img_s": B / t_sample, "data_img_s": n / t_data, "data_n": n,
            "peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if device != "cpu" else None,
            "first_step_s": t_first,
        })
    return rows


def device_name(device):
    return torch.cuda.get_device_name() if device != "cpu" else f"cpu ({torch.get_num_threads()} threads)"


def table(rows):
    """The rows as a Markdown table."""
    cols = ["batch", "variant", "train_img_s", "plain_train_img_s", "pyro_overhead", "decompose_img_s", "sample_img_s",
            "data_img_s", "data_n", "peak_gib", "first_step_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return f"{rows[0]['dataset']} on {rows[0]['device']}\n\n" + "\n".join(lines)


def write_json(rows, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(rows, indent=2) + "\n"))
