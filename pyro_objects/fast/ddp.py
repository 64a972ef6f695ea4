"""Data parallelism under torchrun: each process takes its share of every batch, and
together they take the step one process would on the whole batch.

- `DataParallelAdam` sums the gradients over the processes (one all-reduce a step) before
  FusedAdam's update, so every process steps with the global batch's gradient;
- `over_processes(elbo)` takes the θ penalty's aggregate over the global batch (a
  differentiable all-reduce), each process's share of the penalty being its images'.
"""
import pyro
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

from .optim import FusedAdam


def world_size():
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank():
    return dist.get_rank() if world_size() > 1 else 0


def any_rank(flag):
    """True on every process if it is true on any: all stop, or fall back, together."""
    if world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return bool(t.item())


class DataParallelAdam(FusedAdam):
    def __call__(self, params, *args, **kwargs):
        params = sorted(params, key=pyro.get_param_store().param_name)  # the same order in every process
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            flat = torch.cat([g.flatten() for g in grads])  # one all-reduce, not one per parameter
            dist.all_reduce(flat)
            for g, summed in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(summed.view_as(g))
        super().__call__(params, *args, **kwargs)


def over_processes(elbo):
    """elbo with the aggregated posterior of its θ penalty taken over every process's images."""
    def aggregate(probs):  # [B, J, P] -> the global batch's Σ_{b,j} Q(θ_j | x_b) [P], and its images
        return dist_nn.all_reduce(probs.sum((0, 1))), probs.shape[0] * world_size()
    elbo.aggregate = aggregate
    return elbo
