"""Interventions on generated scenes with `pyro.poutine.do` (Sec. 5.3, Fig. 6).

A scene is sampled once under `poutine.trace`; an intervention reruns the model
with every latent replayed from that trace except the site it sets, through
`poutine.do`: moving slot j to a pixel sets `theta`, bringing it to the front sets
`d`. Each object keeps the appearance z it was drawn with, so before and after
differ only where the intervention says.

    scenes, trace = sample(model, n=8, hyperprior=True)
    moved = place_objects(model, trace, [(0, 20, 30)])     # slot 0 to row 20, column 30
    front = bring_to_front(model, trace, 1)                # slot 1 in front of the others
"""
import torch
from pyro import poutine

from .errors import InputError


@torch.no_grad()
def sample(model, n, temperature=None, sigma=None, hyperprior=False):
    """n scenes and the trace that holds their latents. -> (model output, trace)"""
    temperature = model.cfg.min_temperature if temperature is None else temperature
    trace = poutine.trace(model).get_trace(n=n, temperature=temperature, sigma=sigma, hyperprior=hyperprior)
    return trace.nodes["_RETURN"]["value"], trace


@torch.no_grad()
def intervene(model, trace, **data):
    """The traced scenes again, under do(site = value) for each of data's sites (theta, d, z, ...)."""
    inputs = trace.nodes["_INPUT"]
    return poutine.do(poutine.replay(model, trace=trace), data=data)(*inputs["args"], **inputs["kwargs"])


def place_objects(model, trace, placements):
    """The traced scenes with each (slot j, row r, col c) of placements moved to pixel (r, c)."""
    return intervene(model, trace, theta=one_hot_at(trace.nodes["theta"]["value"], placements, model.cfg.image_size))


def bring_to_front(model, trace, slot):
    """The traced scenes with slot in front of every other object."""
    return intervene(model, trace, d=nearest(trace.nodes["d"]["value"], slot, model.cfg.depth_softness))


def one_hot_at(theta, placements, N):  # θ_j = one-hot at (r, c): Eq. 7-8 put canvas j's centre there
    """theta [B, J, N*N] with each (slot j, row r, col c) of placements made a one-hot at (r, c)."""
    theta = theta.clone()
    for j, r, c in placements:
        _check_slot(j, theta.shape[1])
        if not (0 <= r < N and 0 <= c < N):
            raise InputError(f"pixel ({r}, {c}) is outside the {N}×{N} image")
        theta[:, j] = 0
        theta[:, j, r * N + c] = 1
    return theta


def nearest(d, slot, tau, margin=10.0):  # Eq. 9: in front by margin·τ, so the soft order is hard for slot
    """d [B, J] with slot's depth margin·τ nearer than every other object's (σ(-10) < 1e-4 of
    Eq. 9's soft order is left). It may fall below 0, which the compositor reads as nearer still."""
    _check_slot(slot, d.shape[1])
    others = torch.cat([d[:, :slot], d[:, slot + 1:]], 1)
    d = d.clone()
    d[:, slot] = others.min(1).values - margin * tau if others.shape[1] else d[:, slot]
    return d


def _check_slot(j, J):
    if not 0 <= j < J:
        raise InputError(f"slot {j} does not exist: the model has slots 0 to {J - 1}")
