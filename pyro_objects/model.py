"""The generative process of Sec. 3, as a Pyro model.

    y    ~ N(0, I)                                   scene embedding (stage 2 only)
    z_bg ~ N(0, I),          x_bg = F_bg(z_bg)       background
    for each of the J slots:
        θ_j ~ RelaxedOneHotCategorical(τ, ζ(y))      position: a pixel of the N×N image
        z_j ~ N(ξ(y, θ_j))                           appearance and shape
        d_j ~ LogitNormal(ξ(y, θ_j))                 depth in (0, 1), larger is farther
    x ~ N(G(F_obj(z), θ, d, x_bg), σ²)               the compositor G places and blends

Without the hyperprior (stage 1, and the ablation of Table 2) there is no y:
θ is uniform over pixels and z, logit d are standard normal.

Stage 2 (Sec. 4, App. B) fits the hyperprior alone, on the guide's posterior
modes: `scene_prior` is p(y) Π_j p(θ_j | y) p(z_j, d_j | y, θ_j) with θ_j a hard
one-hot (the τ → 0 limit of the relaxed categorical, whose density at a one-hot
is degenerate), so θ's term is the categorical log-probability of the mode's
pixel under ζ's logits.

Shapes: the plate "images" is dim -2 and "objects" dim -1, so per-image
sites carry a singleton slot dim: z_bg is [B, 1, D], z is [B, J, D].
"""
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions.transforms import SigmoidTransform

from .compositor import compose, place
from .nets import build


def logit_normal(loc, scale):
    """The depth distribution: d = sigmoid(u), u ~ N(loc, scale). Its median is sigmoid(loc).

    The transform keeps its last sample, so log q(d) of a guide's own draw is computed from u.
    Recomputed as logit(d), u would round to about ±16 in float32 once |u| > 16, and a guide could
    then lower its KL without bound by pushing its depth far back (a clevr5-vbg run did).
    """
    return dist.TransformedDistribution(dist.Normal(loc, scale), [SigmoidTransform(cache_size=1)])


def positive(raw, floor=1e-3):
    """A network output made a scale: softplus, kept off zero so log-densities stay finite."""
    return torch.nn.functional.softplus(raw) + floor


def scalar_like(v, like):
    """v (a number or a tensor) as a tensor on like's device and of its dtype. A number becomes one by
    a fill on the device: torch.as_tensor would copy it from the host and wait for the GPU's queue."""
    return v if torch.is_tensor(v) else like.new_full((), v)


def pixel_grid(n, device=None):
    """Coordinates of the N×N pixels, each in [-1, 1]: [N*N, 2] as (row, col)."""
    axis = torch.linspace(-1, 1, n, device=device)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(n * n, 2)


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        N, J = cfg.image_size, cfg.slots
        self.F_obj = build(cfg.obj_decoder, (cfg.z_dim,), "obj_decoder")
        self.F_bg = build(cfg.bg_decoder, (cfg.z_bg_dim,), "bg_decoder")
        if self.F_obj.out_shape != (4, cfg.canvas_size, cfg.canvas_size):
            raise ValueError(f"obj_decoder draws {self.F_obj.out_shape}, not a 4×{cfg.canvas_size}×{cfg.canvas_size} canvas")
        if self.F_bg.out_shape != (3, N, N):
            raise ValueError(f"bg_decoder draws {self.F_bg.out_shape}, not a 3×{N}×{N} background")
        # Footnote 1: ζ reads the first half of y, ξ the second, so positions and
        # appearances can be intervened on separately.
        self.y_pos = cfg.y_dim // 2
        self.zeta = build(cfg.zeta, (self.y_pos,), "zeta")
        if self.zeta.out_shape != (J, N, N):
            raise ValueError(f"zeta draws {self.zeta.out_shape}, not {J}×{N}×{N} position logits")
        # Eq. 5: ξ reads y's second half and object j's position, with 'all' then the other objects' positions
        seen = 2 * (J if cfg.xi_positions == "all" else 1)
        xi = build(cfg.xi, (cfg.y_dim - self.y_pos + seen,), "xi")
        self.xi = nn.Sequential(xi, nn.Linear(xi.out_shape[0], 2 * (cfg.z_dim + 1)))
        self.register_buffer("grid", pixel_grid(N), persistent=False)

    def forward(self, x=None, n=None, temperature=1.0, sigma=None, hyperprior=False):
        """The model. x: [B, 3, N, N] in [0, 1], or None with n to sample n scenes."""
        pyro.module("model", self)
        cfg, J = self.cfg, self.cfg.slots
        B = x.shape[0] if x is not None else n
        sigma = cfg.sigma[0] if sigma is None else sigma
        temperature, sigma = scalar_like(temperature, self.grid), scalar_like(sigma, self.grid)
        with pyro.plate("images", B, dim=-2):
            y = None
            if hyperprior:
                y = pyro.sample("y", self.standard_normal(cfg.y_dim))[:, 0]
            z_bg = pyro.sample("z_bg", self.standard_normal(cfg.z_bg_dim))
            x_bg = self.draw_background(z_bg[:, 0])
            with pyro.plate("objects", J, dim=-1):
                # Over N² pixels the float32 softmax of peaked logits can miss Simplex()'s 1e-6 tolerance: skip the check.
                theta = pyro.sample("theta", dist.RelaxedOneHotCategorical(temperature, logits=self.zeta_logits(y, B),
                                                                           validate_args=False))
                loc, scale = self.xi_params(y, theta)
                z = pyro.sample("z", dist.Normal(loc[..., :-1], scale[..., :-1]).to_event(1))
                d = pyro.sample("d", logit_normal(loc[..., -1], scale[..., -1]))
            canvas = self.draw_objects(z)  # [B, J, 4, M, M]
            placed = place(canvas, theta.reshape(B, J, cfg.image_size, cfg.image_size))  # Eq. 7-8: [B, J, 4, N, N]
            x_mean = self.blend(placed, d, x_bg)  # Eq. 9-12: [B, 3, N, N]
            pyro.sample("x", dist.Normal(x_mean.unsqueeze(1), sigma).to_event(3),
                        obs=None if x is None else x.unsqueeze(1))
        return {"x_mean": x_mean, "x_bg": x_bg, "canvas": canvas, "placed": placed, "d": d, "theta": theta}

    def scene_prior(self, n, theta=None, z=None, d=None):  # Sec. 4, stage 2: p(y) Π_j p(θ_j|y) p(z_j, d_j|y, θ_j)
        """The hyperprior over one-hot positions: given theta [n, J, N*N] (one-hot), z [n, J, Dz]
        and d [n, J], it scores them (stage 2 trains ζ and ξ on the guide's modes); without, it samples them."""
        pyro.module("model", self)
        cfg = self.cfg
        with pyro.plate("images", n, dim=-2):
            y = pyro.sample("y", self.standard_normal(cfg.y_dim))[:, 0]
            with pyro.plate("objects", cfg.slots, dim=-1):
                theta = pyro.sample("theta", dist.OneHotCategorical(logits=self.zeta_logits(y, n)), obs=theta)
                loc, scale = self.xi_params(y, theta)
                z = pyro.sample("z", dist.Normal(loc[..., :-1], scale[..., :-1]).to_event(1), obs=z)
                d = pyro.sample("d", logit_normal(loc[..., -1], scale[..., -1]), obs=d)
        return {"y": y, "theta": theta, "z": z, "d": d}

    def standard_normal(self, dim):  # p(y), p(z_bg): N(0, I), built on the model's device (no host copy)
        zeros = self.grid.new_zeros(dim)
        return dist.Normal(zeros, zeros + 1).to_event(1)

    def draw_objects(self, z):  # F_obj: each object once, centred on its own canvas
        """z: [B, J, Dz] -> canvas [B, J, 4, M, M], RGB and alpha in (0, 1)"""
        B, J, _ = z.shape
        return torch.sigmoid(self.F_obj(z.reshape(B * J, -1))).reshape(B, J, *self.F_obj.out_shape)

    def draw_background(self, z_bg):  # F_bg
        """z_bg: [B, D] -> [B, 3, N, N]"""
        return torch.sigmoid(self.F_bg(z_bg))

    def blend(self, placed, d, x_bg):  # G's soft depth order and alpha blending, far to near
        """placed: [B, J, 4, N, N], d: [B, J], x_bg: [B, 3, N, N] -> x_mean [B, 3, N, N]"""
        return compose(placed, d, x_bg, self.cfg.depth_softness, self.cfg.depth_blend)

    def zeta_logits(self, y, B):  # ζ(y): position logits for every slot; uniform without y
        """y: [B, Dy] or None -> [B, J, N*N]"""
        if y is None:
            return self.grid.new_zeros(B, self.cfg.slots, self.grid.shape[0])
        return self.zeta(y[:, :self.y_pos]).reshape(B, self.cfg.slots, -1)

    def xi_params(self, y, theta):  # Eq. 5, ξ(y, θ): prior mean and scale of (z_j, logit d_j); N(0, I) without y
        """y: [B, Dy] or None, theta: [B, J, N*N] -> loc, scale: [B, J, Dz + 1]"""
        if y is None:
            loc = theta.new_zeros(theta.shape[:2] + (self.cfg.z_dim + 1,))
            return loc, torch.ones_like(loc)
        B, J = theta.shape[:2]
        where = theta @ self.grid  # expected position of each object, [B, J, 2]
        if self.cfg.xi_positions == "all":  # object j's position first, then the others' in slot order: [B, J, 2J]
            others = torch.stack([torch.cat([where[:, :j], where[:, j + 1:]], 1).flatten(1) for j in range(J)], 1)
            where = torch.cat([where, others], -1)
        y_app = y[:, None, self.y_pos:].expand(-1, J, -1)
        loc, raw_scale = self.xi(torch.cat([y_app, where], -1).flatten(0, 1)).chunk(2, -1)
        shape = theta.shape[:2] + (-1,)
        return loc.reshape(shape), positive(raw_scale.reshape(shape))
