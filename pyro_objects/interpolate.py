"""Interpolation in the scene embedding y (Sec. 5.3, Fig. 5).

Encode two images (the guide's modes, then the mean of Q(y | z, θ, d)), walk
from one y to the other in the half that drives positions (ζ reads y's first
half), the half that drives appearances (ξ reads the second), or both
(footnote 1), and decode each step: θ at the argmax of ζ's logits, z and
logit d at ξ's means, the background of the first image throughout.
"""
import torch
from pyro import poutine

from .errors import InputError

FACTORS = ("position", "appearance", "both")


@torch.no_grad()
def encode_y(guide, x):  # Q(y | z, θ, d) at the guide's modes
    """x: [B, 3, N, N] -> (y [B, Dy], the modes)"""
    modes = guide.modes(x)
    return guide.q_y(modes["z"], modes["theta"], modes["d"]).mean[:, 0], modes


def path(y_a, y_b, factor, steps, y_pos):
    """steps points from y_a to y_b [Dy], moving only the factor's half of y. -> [steps, Dy]"""
    if factor not in FACTORS:
        raise InputError(f"unknown factor {factor!r}: use one of {', '.join(FACTORS)}")
    if steps < 2:
        raise InputError("--steps must be at least 2")
    t = torch.linspace(0, 1, steps, device=y_a.device)[:, None]
    moving = torch.zeros_like(y_a, dtype=torch.bool)
    moving[:y_pos] = factor != "appearance"
    moving[y_pos:] = factor != "position"
    return torch.where(moving, (1 - t) * y_a + t * y_b, y_a.expand(steps, -1))


@torch.no_grad()
def decode_y(model, y, z_bg, sigma=None):  # the hyperprior's modes given y, composed by G
    """y: [S, Dy], z_bg: [S, 1, D] -> the model's output (x_mean, placed, d, theta) for each y"""
    S, N = y.shape[0], model.cfg.image_size
    logits = model.zeta_logits(y, S)  # ζ(y)
    theta = torch.nn.functional.one_hot(logits.argmax(-1), N * N).to(y.dtype)
    loc, _ = model.xi_params(y, theta)  # ξ(y, θ)
    latents = {"y": y[:, None], "theta": theta, "z": loc[..., :-1], "d": torch.sigmoid(loc[..., -1]), "z_bg": z_bg}
    return poutine.condition(model, data=latents)(n=S, sigma=sigma, hyperprior=True)


def interpolate(model, guide, x_a, x_b, factor="both", steps=8):
    """Scenes on the way from image x_a to x_b [3, N, N] in one factor of y.
    -> the model's output for each of the steps, with "y" [steps, Dy] added"""
    y, modes = encode_y(guide, torch.stack([x_a, x_b]))
    ys = path(y[0], y[1], factor, steps, model.y_pos)
    out = decode_y(model, ys, modes["z_bg"][:1].expand(steps, -1, -1))
    return {**out, "y": ys}
