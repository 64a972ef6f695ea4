"""The objective of Sec. 4: an ELBO with per-site β weights on the KL terms and,
in place of θ's KL, an L1 penalty that pulls the batch-aggregated posterior
over positions towards the uniform prior.

    loss = -log p(x | ·) + Σ_s β_s (log q(s) - log p(s))           s ∈ {y, z_bg, z, d}
           + λ · B · ‖ mean_{b,j} Q(θ_j | x_b) - uniform ‖_1
           + γ · Σ_{b,j} mean_pixels(-α log α)                     (optional)
           + η · Σ_b Σ_{i<j} overlap(Q(θ_i | x_b), Q(θ_j | x_b))        (optional, ours)

`ObjectsELBO` is Pyro's Trace_ELBO with those weights; with every β = 1, λ = None
and γ = 0 it is Trace_ELBO, term for term. Stage 2 (`scene_prior_elbo`) is the
same class on Model.scene_prior, whose θ, z, d are observed (the guide's modes),
with β_y on the KL of y. The guide must be fully reparameterised (ours is).
"""
import math

import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.trace_messenger import TraceHandler, TraceMessenger
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match, check_site_shape, warn_if_nan


class SampleTrace(TraceMessenger):
    """poutine.trace without the param sites: the ELBO reads only sample sites, and SVI.step
    collects the parameters with a trace of its own, around this one."""

    def _pyro_post_param(self, msg):
        pass


def trace_samples(fn):
    return TraceHandler(SampleTrace(), fn)


class ObjectsELBO(Trace_ELBO):
    def __init__(self, beta=None, theta_penalty=None, alpha_penalty=0.0, slot_overlap=0.0, **kwargs):
        kwargs.setdefault("max_plate_nesting", 2)
        super().__init__(**kwargs)
        self.beta = dict(beta or {})
        self.theta_penalty = theta_penalty
        self.alpha_penalty = alpha_penalty
        self.slot_overlap = slot_overlap
        self.last_terms = {}  # the latest particle's terms, detached, for logging

    def _get_trace(self, model, guide, args, kwargs):
        """Trace_ELBO's traces, but θ is not scored when the penalty replaces its KL: its relaxed
        one-hot density over N² pixels is never used then (and underflows at low temperatures)."""
        guide_trace = trace_samples(guide).get_trace(*args, **kwargs)
        model_trace = trace_samples(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)
        scored = (lambda name, site: name != "theta") if self.theta_penalty is not None else (lambda name, site: True)
        model_trace.compute_log_prob(scored)
        guide_trace.compute_log_prob(scored)
        if is_validation_enabled():
            for site in [*model_trace.nodes.values(), *guide_trace.nodes.values()]:
                if site["type"] == "sample" and "log_prob" in site:
                    check_site_shape(site, self.max_plate_nesting)
        return model_trace, guide_trace

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        terms = self.terms(model_trace, guide_trace)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        loss = sum(terms.values())
        return loss.detach(), loss  # fully reparameterised: the surrogate loss is the loss

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Trace_ELBO's: the loss, and its gradients accumulated by backward. Its traces hold no
        param sites, so it asks the loss, not the traces, whether anything needs a gradient. The NaN
        warning reads the loss on the host, which waits for the GPU mid-step, so here it warns only
        while Pyro validates (training turns validation off and tests the loss SVI.step returns)."""
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss_particle, surrogate = self._differentiable_loss_particle(model_trace, guide_trace)
            loss += loss_particle / self.num_particles
            if getattr(surrogate, "requires_grad", False):
                (surrogate / self.num_particles).backward(retain_graph=self.retain_graph)
        if is_validation_enabled():
            warn_if_nan(loss, "loss")
        return loss

    def loss(self, model, guide, *args, **kwargs):
        """The loss without gradients, weighted as differentiable_loss is (Trace_ELBO's own is unweighted)."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def terms(self, model_trace, guide_trace):
        """The loss, term by term: {"nll": ..., "kl_z": ..., "theta_penalty": ...}, each a scalar tensor."""
        terms = {}
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample" or "log_prob_sum" not in site:
                continue
            if site["is_observed"]:
                terms[f"nll_{name}" if name != "x" else "nll"] = -site["log_prob_sum"]
            else:  # Monte Carlo KL: log q - log p at the guide's sample
                kl = guide_trace.nodes[name]["log_prob_sum"] - site["log_prob_sum"]
                terms[f"kl_{name}"] = self.beta.get(name, 1.0) * kl
        if self.theta_penalty is not None:
            probs = guide_trace.nodes["theta"]["fn"].probs
            terms["theta_penalty"] = self.theta_penalty * aggregate_l1(probs, *self.aggregate(probs))
        if self.alpha_penalty:
            alpha = model_trace.nodes["_RETURN"]["value"]["canvas"][:, :, 3]
            terms["alpha_penalty"] = self.alpha_penalty * binary_alpha_penalty(alpha)
        if self.slot_overlap:
            probs = guide_trace.nodes["theta"]["fn"].probs
            terms["slot_overlap"] = self.slot_overlap * slot_overlap(probs)
        return terms

    def aggregate(self, probs):
        """Σ_{b,j} Q(θ_j | x_b) over the batch and the batch's number of images: probs [B, J, P] -> ([P], B).
        Under data parallelism the batch is every process's (pyro_objects/fast/ddp.py)."""
        return probs.sum((0, 1)), probs.shape[0]


def from_config(cfg):
    """The objective with a config's β weights and penalties."""
    beta = {"y": cfg.beta_y, "z_bg": cfg.beta_bg, "z": cfg.beta_z, "d": cfg.beta_d}
    return ObjectsELBO(beta=beta, theta_penalty=cfg.theta_penalty, alpha_penalty=cfg.alpha_penalty,
                       slot_overlap=cfg.slot_overlap)


def scene_prior_elbo(cfg):  # Sec. 4, stage 2
    """The objective of stage 2: the ELBO of the posterior modes (θ, z, d) under the hyperprior,
    -log p(θ, z, d | y) + β_y (log Q(y | z, θ, d) - log p(y)). Its observed sites' terms are
    logged as nll_theta, nll_z, nll_d."""
    return ObjectsELBO(beta={"y": cfg.beta_y})


def aggregate_l1(probs, total=None, images=None):  # Sec. 4: replaces KL(Q(θ) || p(θ))
    """B · ‖(1/BJ) Σ_{b,j} Q(θ_j | x_b) - uniform‖_1, scaled by B so that it weighs per image.

    probs: [B, J, P] (each row sums to 1) -> scalar. With the sum `total` [P] over a larger batch
    of `images` images that holds these B, the aggregate is that batch's, and the penalty its
    share for these B images (the whole penalty is the sum of the shares).
    """
    B, J, P = probs.shape
    total = probs.sum((0, 1)) if total is None else total
    images = B if images is None else images
    return B * (total / (images * J) - 1.0 / P).abs().sum()


def binary_alpha_penalty(alpha):  # App. Fig. 14: push alphas to 0 or 1
    """Σ over objects of the mean of -α log α over canvas pixels; 0 for binary alphas.

    alpha: [B, J, M, M] -> scalar
    """
    return -(alpha * torch.log(alpha.clamp_min(1e-6))).mean((-1, -2)).sum()


OVERLAP_PX = 4.0  # the reach, in pixels, of slot_overlap's kernel


def slot_overlap(probs, px=OVERLAP_PX):  # ours: two slots placed on one object
    """Σ_b Σ_{i<j} Σ_{p,p'} Q(θ_i = p | x_b) Q(θ_j = p' | x_b) exp(-|p - p'|² / 4px²): 1 for two slots sure
    of one pixel, 0 for slots far apart.

    probs: [B, J, N*N] (each row sums to 1) -> scalar
    """
    B, J, P = probs.shape
    N, r = math.isqrt(P), math.ceil(4 * px)
    kernel = torch.exp(-torch.arange(-r, r + 1, dtype=probs.dtype, device=probs.device) ** 2 / (4 * px * px))
    q = probs.reshape(B * J, 1, N, N)
    q = torch.nn.functional.conv2d(q, kernel.view(1, 1, 1, -1), padding=(0, r))  # separable: rows, then columns
    q = torch.nn.functional.conv2d(q, kernel.view(1, 1, -1, 1), padding=(r, 0)).reshape(B, J, P)
    gram = probs @ q.transpose(1, 2)  # [B, J, J]
    return (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)).sum() / 2
