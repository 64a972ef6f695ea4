"""The factorised posterior of Eq. 13, as a Pyro guide.

    Q(z_bg | x) · Π_j Q(θ_j | x) Q(z_j | θ_j, x) Q(d_j | θ_j, x) · Q(y | z, θ, d)

Q(θ | x): a U-Net gives position logits for all J slots at once.
Q(z_j, d_j | θ_j, x): one CNN per slot, fed either the whole image with θ_j as a
fourth channel, or, with attentive encoding, only the θ-weighted M×M crop
around the object (Sec. 4). Depth is logit-normal, like its prior: a Gaussian
on logit d, so its KL is finite and samples are reparameterised.
Q(y | z, θ, d): a set encoder, summed over objects, for stage 2.
"""
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .compositor import crop
from .model import logit_normal, pixel_grid, positive, scalar_like
from .nets import UNet, build


class Guide(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        N, M, J = cfg.image_size, cfg.canvas_size, cfg.slots
        self.position = UNet(3, J, cfg.position_unet)
        self.encode_object = build(cfg.obj_encoder, (3, M, M) if cfg.attentive else (4, N, N), "obj_encoder")
        self.encode_background = build(cfg.bg_encoder, (3, N, N), "bg_encoder")
        if self.encode_object.out_shape != (2 * (cfg.z_dim + 1),):
            raise ValueError(f"obj_encoder must end in d{2 * (cfg.z_dim + 1)} (mean and scale of z and d)")
        if self.encode_background.out_shape != (2 * cfg.z_bg_dim,):
            raise ValueError(f"bg_encoder must end in d{2 * cfg.z_bg_dim} (mean and scale of z_bg)")
        y_obj = build(cfg.y_encoder, (cfg.z_dim + 3,), "y_encoder")
        self.encode_y = nn.ModuleDict({"object": y_obj, "head": nn.Linear(y_obj.out_shape[0], 2 * cfg.y_dim)})
        self.register_buffer("grid", pixel_grid(N), persistent=False)

    def forward(self, x, n=None, temperature=1.0, sigma=None, hyperprior=False):
        """The guide; takes the model's arguments. x: [B, 3, N, N] in [0, 1]."""
        pyro.module("guide", self)
        B, J = x.shape[0], self.cfg.slots
        temperature = scalar_like(temperature, x)
        with pyro.plate("images", B, dim=-2):
            pyro.sample("z_bg", self.q_z_bg(x))
            with pyro.plate("objects", J, dim=-1):
                theta = pyro.sample("theta", dist.RelaxedOneHotCategorical(temperature, logits=self.theta_logits(x),
                                                                           validate_args=False))  # see model.py
                q_z, q_d = self.q_z_d(x, theta)
                z = pyro.sample("z", q_z)
                d = pyro.sample("d", q_d)
            if hyperprior:
                pyro.sample("y", self.q_y(z, theta, d))

    def scene_posterior(self, n, theta, z, d):  # Q(y | z, θ, d): the guide of Model.scene_prior (stage 2)
        """theta: [n, J, N*N], z: [n, J, Dz], d: [n, J], the posterior modes of n images."""
        pyro.module("guide", self)
        with pyro.plate("images", n, dim=-2):
            pyro.sample("y", self.q_y(z, theta, d))

    def theta_logits(self, x):  # Q(θ | x)
        """x: [B, 3, N, N] -> [B, J, N*N]"""
        return self.position(x).flatten(2)

    def q_z_bg(self, x):  # Q(z_bg | x), batch shape [B, 1]
        loc, raw_scale = self.encode_background(x).chunk(2, -1)
        return dist.Normal(loc[:, None], positive(raw_scale[:, None])).to_event(1)

    def q_z_d(self, x, theta):  # Q(z_j | θ_j, x) and Q(d_j | θ_j, x), batch shape [B, J]
        """x: [B, 3, N, N], theta: [B, J, N*N] -> (Normal over z, LogitNormal over d)"""
        B, J, N, M = x.shape[0], self.cfg.slots, self.cfg.image_size, self.cfg.canvas_size
        where = theta.reshape(B, J, N, N)
        if self.cfg.attentive:  # Sec. 4: cross-correlate the image with θ_j
            inputs = crop(x, where, M).reshape(B * J, 3, M, M)
        else:  # the whole image, with θ_j scaled to a peak of 1 as a fourth channel
            peak = where / where.amax((-1, -2), keepdim=True).clamp_min(1e-12)
            inputs = torch.cat([x.unsqueeze(1).expand(B, J, 3, N, N), peak.unsqueeze(2)], 2).reshape(B * J, 4, N, N)
        loc, raw_scale = self.encode_object(inputs).reshape(B, J, -1).chunk(2, -1)
        scale = positive(raw_scale)
        return (dist.Normal(loc[..., :-1], scale[..., :-1]).to_event(1),
                logit_normal(loc[..., -1], scale[..., -1]))

    def q_y(self, z, theta, d):  # Q(y | z, θ, d): a sum over the set of objects, batch shape [B, 1]
        where = theta @ self.grid
        per_object = torch.cat([z, torch.logit(d, eps=1e-6).unsqueeze(-1), where], -1)
        h = self.encode_y["object"](per_object.flatten(0, 1)).reshape(*z.shape[:2], -1).sum(1)
        loc, raw_scale = self.encode_y["head"](h).chunk(2, -1)
        return dist.Normal(loc[:, None], positive(raw_scale[:, None])).to_event(1)

    @torch.no_grad()
    def modes(self, x):
        """Each latent's most probable value: θ one-hot at the argmax pixel, z its mean,
        d its median. Condition the model on these to decompose x.

        x: [B, 3, N, N] -> {"theta": [B, J, N*N], "z": [B, J, Dz], "d": [B, J], "z_bg": [B, 1, D]}
        """
        logits = self.theta_logits(x)
        theta = nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(x.dtype)
        q_z, q_d = self.q_z_d(x, theta)
        return {"theta": theta, "z": q_z.mean, "d": torch.sigmoid(q_d.base_dist.loc), "z_bg": self.q_z_bg(x).mean}
