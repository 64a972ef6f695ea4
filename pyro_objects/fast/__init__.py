"""The acceleration layer: the paper's model, guide and SVI step, run faster, computing the same.

It wraps the paper layer from outside; the paper's files never import it.

    accelerate(model, guide, speed)         # networks: channels_last, bf16 autocast, compile (networks.py)
    optim = optimiser(lr, device, speed)    # one fused Adam over every parameter on a GPU (optim.py)
    svi = SVI(model, guide, optim, loss=elbo)
    step = stage_1_step(svi, elbo, speed, device)   # svi.step, or its record replayed as a CUDA graph (graphs.py)
    cache.load(run_dir, speed) ... cache.save(run_dir, speed)   # what torch.compile built, in RUN/compiled.bin (cache.py)

Under torchrun (ddp.py) the optimiser sums gradients over processes and the θ penalty
takes the global batch. tests/test_fast.py checks each against the plain path: the same
loss and gradients, and after a few steps the same parameters.
"""
import contextlib

import pyro.optim
import torch

from . import cache
from .ddp import DataParallelAdam, any_rank, over_processes, rank, world_size
from .graphs import GraphedStep
from .networks import accelerate as _accelerate
from .optim import FusedAdam

__all__ = ["FusedAdam", "GraphedStep", "accelerate", "any_rank", "cache", "eager", "optimiser", "over_processes", "rank",
           "stage_1_step", "world_size"]


def on_gpu(device):
    return str(device).startswith("cuda")


def accelerate(model, guide, speed, device="cpu", compile_only=None):
    """model and guide, changed in place to run as speed asks on device (nothing changes on a CPU
    with the default Speed: there the plain path runs); compile_only: see networks.accelerate."""
    if on_gpu(device):
        torch.backends.cudnn.benchmark = True  # the shapes never change: cuDNN times its algorithms once
    if on_gpu(device) or speed.precision == "bf16" or speed.compile or speed.channels_last:
        _accelerate(model, guide, speed, compile_only)
    return model, guide


def eager():
    """A context in which compiled networks run as plain PyTorch, compiling nothing: for the work between
    the steps (calibration, checks, figures), a few batches in modes and shapes that the steps do not use,
    each of which would otherwise compile graphs of its own (docs/PERFORMANCE.md, Between the steps).
    Before torch 2.6, which has no stances, they compile as before."""
    if not hasattr(torch.compiler, "set_stance"):
        return contextlib.nullcontext()
    return torch.compiler.set_stance("force_eager")


def graphed(speed, device):
    return speed.cuda_graphs and on_gpu(device) and world_size() == 1


def optimiser(lr, device, speed):
    """Adam at learning rate lr, as a Pyro optimiser: pyro.optim.Adam on a CPU, one fused Adam on a GPU,
    its gradients summed over the processes under torchrun."""
    if world_size() > 1:
        return DataParallelAdam({"lr": lr})
    if on_gpu(device):
        return FusedAdam({"lr": lr}, capturable=graphed(speed, device))
    return pyro.optim.Adam({"lr": lr})


def stage_1_step(svi, elbo, speed, device):
    """A function (x, temperature, sigma) -> loss that takes one stage-1 step: svi.step, or its CUDA graph."""
    if graphed(speed, device):
        return GraphedStep(svi, elbo)
    return lambda x, temperature, sigma: svi.step(x, temperature=temperature, sigma=sigma)
