"""The objective of Sec. 4: an ELBO with per-site β weights on the KL terms and,
in place of θ's KL, an L1 penalty that pulls the batch-aggregated posterior
over positions towards the uniform prior.

    loss = -log p(x | ·) + Σ_s β_s (log q(s) - log p(s))           s ∈ {y, z_bg, z, d}
           + λ · B · ‖ mean_{b,j} Q(θ_j | x_b) - uniform ‖_1
           + γ · Σ_{b,j} mean_pixels(-α log α)                     (optional)

With every β = 1, λ = None and γ = 0 it is Pyro's Trace_ELBO, term for term.
Stage 2 (`scene_prior_elbo`) is the same class on Model.scene_prior, whose
θ, z, d are observed (the guide's modes), with β_y on the KL of y.
The guide must be fully reparameterised (ours is).
"""
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import torch_item
from pyro.poutine.util import prune_subsample_sites


class ObjectsELBO(Trace_ELBO):
    def __init__(self, beta=None, theta_penalty=None, alpha_penalty=0.0, **kwargs):
        kwargs.setdefault("max_plate_nesting", 2)
        super().__init__(**kwargs)
        self.beta = dict(beta or {})
        self.theta_penalty = theta_penalty
        self.alpha_penalty = alpha_penalty
        self.last_terms = {}  # the latest particle's terms, detached, for logging

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)
        # θ's log-densities over N×N pixels are costly and unused when the penalty replaces its KL.
        scored = (lambda name, site: name != "theta") if self.theta_penalty is not None else (lambda name, site: True)
        model_trace.compute_log_prob(scored)
        guide_trace.compute_log_prob(scored)
        return model_trace, guide_trace

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
            terms["theta_penalty"] = self.theta_penalty * aggregate_l1(guide_trace.nodes["theta"]["fn"].probs)
        if self.alpha_penalty:
            alpha = model_trace.nodes["_RETURN"]["value"]["canvas"][:, :, 3]
            terms["alpha_penalty"] = self.alpha_penalty * binary_alpha_penalty(alpha)
        return terms

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        terms = self.terms(model_trace, guide_trace)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        loss = sum(terms.values())
        return loss.detach(), loss

    def differentiable_loss(self, model, guide, *args, **kwargs):
        """Trace_ELBO's, without its host synchronisations (a NaN check and a float copy of the loss):
        the guide is fully reparameterised, so the surrogate loss is the loss. A CUDA graph can record it."""
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss + self._differentiable_loss_particle(model_trace, guide_trace)[1] / self.num_particles
        return loss

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Trace_ELBO's, except that it backpropagates even when the traces hold no Pyro params:
        training steps the networks' weights itself, without registering them (model.register)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)

    def loss(self, model, guide, *args, **kwargs):
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))


def from_config(cfg):
    """The objective with a config's β weights and penalties."""
    beta = {"y": cfg.beta_y, "z_bg": cfg.beta_bg, "z": cfg.beta_z, "d": cfg.beta_d}
    return ObjectsELBO(beta=beta, theta_penalty=cfg.theta_penalty, alpha_penalty=cfg.alpha_penalty)


def scene_prior_elbo(cfg):  # Sec. 4, stage 2
    """The objective of stage 2: the ELBO of the posterior modes (θ, z, d) under the hyperprior,
    -log p(θ, z, d | y) + β_y (log Q(y | z, θ, d) - log p(y)). Its observed sites' terms are
    logged as nll_theta, nll_z, nll_d."""
    return ObjectsELBO(beta={"y": cfg.beta_y})


def aggregate_l1(probs):  # Sec. 4: replaces KL(Q(θ) || p(θ))
    """B · ‖(1/BJ) Σ_{b,j} Q(θ_j | x_b) - uniform‖_1, scaled by B so that it weighs per image.

    Under data parallelism the aggregate is over the global batch; each of the W
    processes returns 1/W of the penalty, so their sum is the single-process value.

    probs: [B, J, P] (each row sums to 1) -> scalar
    """
    B, J, P = probs.shape
    total, world = probs.sum((0, 1)), 1
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world = dist.get_world_size()
        total = dist_nn.all_reduce(total)  # differentiable: gradients flow back to every process
    images = B * world
    return images * (total / (images * J) - 1.0 / P).abs().sum() / world


def binary_alpha_penalty(alpha):  # App. Fig. 14: push alphas to 0 or 1
    """Σ over objects of the mean of -α log α over canvas pixels; 0 for binary alphas.

    alpha: [B, J, M, M] -> scalar
    """
    return -(alpha * torch.log(alpha.clamp_min(1e-6))).mean((-1, -2)).sum()
