"""A deep convolutional VAE over whole scenes: the kind of baseline of the paper's Sec. 5.1 and Table 1.

    z ~ N(0, I),  L = latent_size(cfg)          one code for the whole scene
    x ~ N(decoder(z), σ²)                       σ: our model's likelihood scale (cfg.sigma)
    q(z | x) = N(encoder(x))                    loss = -log p(x | z) + β KL(q(z | x) ‖ N(0, I))

The paper gives its baseline's encoder and decoder in Table 6, which we could not read: these networks
are ours, written in our network notation (nets.py), a stride-2 convolution stack down to a 4×4 (64×64
images) or 3×3 (96×96) map and its mirror of transposed convolutions up, ELU throughout, no
normalisation. What is the paper's: a latent as large as our model's object and background latents
together (latent_size). The VAE has no slots; `decompose` gives one mask covering the whole image,
which is what the model says (one code explains every pixel) and keeps the predictions file's
alpha [N, J, H, W] with J = 1; `score` and `evaluate` then report the decomposition metrics as not
applicable (the VAE's MSE and FID are its scores).
"""
import math

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from ..nets import build


def latent_size(cfg):
    """Our model's latents of one image: J·(z_dim + 1 + 2) + z_bg_dim, as numbers.

    Per slot: the appearance z_j (z_dim), the depth d_j (1) and the position θ_j, a pixel of the N×N
    image, counted as the 2 coordinates it carries. polygons: 2·35 + 8 = 78, clevr3: 3·35 + 8 = 113.
    The scene latent y is left out: it is a prior over these, not more of the image."""
    return cfg.slots * (cfg.z_dim + 3) + cfg.z_bg_dim


def networks(image_size, latent):
    """Our (encoder, decoder) strings for N×N images: (3, N, N) -> 2·latent and latent -> (3, N, N)."""
    seed = 3 if image_size % 3 == 0 else 4
    downs = int(math.log2(image_size // seed))
    if seed * 2 ** downs != image_size:
        raise ValueError(f"a {image_size}×{image_size} image does not halve down to 3×3 or 4×4")
    widths = [32] * max(downs - 3, 0) + [64, 64, 128][-downs:]         # 64 px: 32, 64, 64, 128
    ups = list(reversed(widths[:-1])) + [widths[0]]                     # mirror: 64, 64, 32, 32
    top = widths[-1]
    encoder = "-".join([f"c{w}s2e" for w in widths] + ["d256e", f"d{2 * latent}"])
    decoder = "-".join(["d256e", f"d{top * seed * seed}e", f"v{top}x{seed}x{seed}"] + [f"cT{w}e" for w in ups] + ["c3"])
    return encoder, decoder


class VAE(nn.Module):
    def __init__(self, image_size, latent, sigma, beta=1.0, encoder=None, decoder=None):
        super().__init__()
        default_encoder, default_decoder = networks(image_size, latent)
        self.image_size, self.latent, self.sigma, self.beta = image_size, latent, sigma, beta
        self.encoder = build(encoder or default_encoder, (3, image_size, image_size))
        self.decoder = build(decoder or default_decoder, (latent,))
        if self.encoder.out_shape != (2 * latent,) or self.decoder.out_shape != (3, image_size, image_size):
            raise ValueError(f"encoder gives {self.encoder.out_shape}, decoder {self.decoder.out_shape}: "
                             f"want ({2 * latent},) and (3, {image_size}, {image_size})")

    @classmethod
    def for_config(cls, cfg, slots=None, **networks):
        """The baseline for one of our configs; `slots` is unused (the latent follows our model's J);
        networks: other encoder and decoder strings (tests)."""
        return cls(cfg.image_size, latent_size(cfg), sigma=cfg.sigma[0], **networks)

    def posterior(self, x):  # x [B, 3, N, N] -> q(z | x), batch shape [B, L]
        loc, raw = self.encoder(x).chunk(2, -1)
        return Normal(loc, nn.functional.softplus(raw) + 1e-4)

    def loss(self, x, sigma=None):  # x [B, 3, N, N] in [0, 1] -> (loss per image, {"nll", "kl"})
        """The negative ELBO per image, averaged over the batch; sigma overrides self.sigma
        (a harness can follow our schedule of σ)."""
        q = self.posterior(x)
        mean = self.decoder(q.rsample())
        nll = -Normal(mean, sigma or self.sigma).log_prob(x).sum((1, 2, 3)).mean()
        kl = kl_divergence(q, Normal(0.0, 1.0)).sum(1).mean()
        return nll + self.beta * kl, {"nll": nll.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def decompose(self, x):  # x [B, 3, N, N] -> {"alpha" [B, 1, N, N] of ones, "recon" [B, 3, N, N]}
        recon = self.decoder(self.posterior(x).mean).clamp(0, 1)  # the posterior mean, as our decompose uses modes
        return {"alpha": torch.ones_like(x[:, :1]), "recon": recon}

    @torch.no_grad()
    def sample(self, n):  # -> [n, 3, N, N] in [0, 1]: whole scenes from the prior, for FID
        z = torch.randn(n, self.latent, device=next(self.parameters()).device)
        return self.decoder(z).clamp(0, 1)
