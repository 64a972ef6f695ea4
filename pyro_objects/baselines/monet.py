"""MONet (Burgess et al. 2019), written from the paper: an attention network splits the image into K
masks by a recursion on the scope; one component VAE encodes and redraws each masked part.

    s_0 = 1;  for k < K:  α_k = U-Net(x, log s_{k-1}),  m_k = s_{k-1} α_k,  s_k = s_{k-1} (1 - α_k);  m_K = s_{K-1}
    z_k ~ q(z | x, log m_k) = N(encoder(x, log m_k));   (μ_k, mask logits l_k) = broadcast decoder(z_k)
    loss = -Σ_pixels log Σ_k m_k N(x; μ_k, σ_k²)  +  β Σ_k KL(q(z_k) ‖ N(0, I))  +  γ KL(m ‖ softmax_k l)

with σ_1 = σ_bg (the first component takes the background) and σ_k = σ_fg after it. The paper's values:
β = 0.5, γ = 0.5, σ_bg = 0.09, σ_fg = 0.11, a 16-d latent; the encoder is four 3×3 stride-2
convolutions (32, 32, 64, 64, ReLU) and an MLP of 256 to the mean and log-variance; the decoder
broadcasts z to (N + 8)×(N + 8) with two coordinate channels, runs four unpadded 3×3 convolutions
(32, ReLU) back to N×N and a 1×1 one to RGB means and a mask logit; the U-Net's blocks are a 3×3
convolution, instance norm and ReLU, halving (or doubling) the size between blocks, with an MLP of
128, 128 at the bottom; RMSProp at 1e-4, batch 64. None of these was checked against the appendix's
own text: β, γ, σ_bg, σ_fg, the latent, the encoder and the U-Net's blocks agree with a public
re-implementation's settings, whose decoder has 32, 32, 64, 64 channels (ours 32 throughout). Ours: the U-Net's channels (32, 32, 64, 64, 64), its
nearest-neighbour resizing, and one logit per pixel with log α = logsigmoid(l), log(1 - α) = logsigmoid(-l).
The RGB means are unbounded, as a Gaussian's; decompose and sample clamp them to [0, 1].
"""
import torch
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

BETA, GAMMA, SIGMA_BG, SIGMA_FG, LATENT, LR, BATCH = 0.5, 0.5, 0.09, 0.11, 16, 1e-4, 64


def optimiser(params):
    return torch.optim.RMSprop(params, lr=LR)


def _block(c_in, c_out):  # no conv bias: the instance norm after it would cancel it
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU())


class AttentionNet(nn.Module):
    """U-Net: (x, log scope) [B, 4, N, N] -> α's logit [B, 1, N, N]."""

    def __init__(self, image_size, channels=(32, 32, 64, 64, 64), hidden=128):
        super().__init__()
        self.bottom = image_size // 2 ** (len(channels) - 1)
        if self.bottom * 2 ** (len(channels) - 1) != image_size:
            raise ValueError(f"{len(channels)} U-Net blocks cannot halve {image_size} pixels {len(channels) - 1} times")
        self.down = nn.ModuleList(_block(c_in, c) for c_in, c in zip((4, *channels[:-1]), channels))
        top = channels[-1] * self.bottom ** 2
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(top, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, top), nn.ReLU())
        outs = (channels[0], *channels[:-1])  # the up block at level i ends with level i-1's channels
        self.up = nn.ModuleList(_block(2 * c, c_out) for c, c_out in zip(channels, outs))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.interpolate(x, scale_factor=0.5, mode="nearest"))
            skips.append(x)
        h = self.mlp(x).reshape(x.shape)
        for i in reversed(range(len(self.up))):
            h = self.up[i](torch.cat([h, skips[i]], 1))
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return self.head(h)


class ComponentVAE(nn.Module):
    def __init__(self, image_size, latent=LATENT, channels=(32, 32, 64, 64), hidden=256, width=32, layers=4):
        super().__init__()
        self.latent = latent
        convs, c, n = [], 4, image_size
        for w in channels:
            convs += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.ReLU()]
            c, n = w, (n + 1) // 2
        self.encoder = nn.Sequential(*convs, nn.Flatten(), nn.Linear(c * n * n, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * latent))
        self.size = image_size + 2 * layers  # each unpadded 3×3 convolution trims a pixel off every side
        dec, c = [], latent + 2
        for _ in range(layers):
            dec += [nn.Conv2d(c, width, 3), nn.ReLU()]
            c = width
        self.decoder = nn.Sequential(*dec, nn.Conv2d(width, 4, 1))
        axis = torch.linspace(-1, 1, self.size)
        self.register_buffer("coords", torch.stack(torch.meshgrid(axis, axis, indexing="ij")), persistent=False)

    def posterior(self, x, log_m):  # x [B, 3, N, N], log_m [B, 1, N, N] -> q(z), batch shape [B, D]
        loc, log_var = self.encoder(torch.cat([x, log_m], 1)).chunk(2, -1)
        return Normal(loc, (0.5 * log_var).exp())

    def decode(self, z):  # z [B, D] -> RGB means [B, 3, N, N], mask logits [B, N, N]
        grid = z[:, :, None, None].expand(-1, -1, self.size, self.size)
        out = self.decoder(torch.cat([grid, self.coords.expand(len(z), -1, -1, -1)], 1))
        return out[:, :3], out[:, 3]


class MONet(nn.Module):
    def __init__(self, image_size, slots, beta=BETA, gamma=GAMMA, sigma_bg=SIGMA_BG, sigma_fg=SIGMA_FG,
                 unet_channels=(32, 32, 64, 64, 64), **vae_sizes):
        super().__init__()
        self.image_size, self.slots = image_size, slots
        self.beta, self.gamma = beta, gamma
        self.register_buffer("sigma", torch.tensor([sigma_bg] + [sigma_fg] * (slots - 1)), persistent=False)
        self.attention = AttentionNet(image_size, unet_channels)
        self.vae = ComponentVAE(image_size, **vae_sizes)

    @classmethod
    def for_config(cls, cfg, slots, **sizes):  # sizes: narrower networks than the paper's (--quick, tests)
        return cls(cfg.image_size, slots, **sizes)

    def masks(self, x):  # x [B, 3, N, N] -> log m [B, K, N, N], by the scope recursion
        log_scope, log_m = torch.zeros_like(x[:, :1]), []
        for _ in range(self.slots - 1):
            logit = self.attention(torch.cat([x, log_scope], 1))
            log_m.append(log_scope + F.logsigmoid(logit))
            log_scope = log_scope + F.logsigmoid(-logit)
        return torch.cat(log_m + [log_scope], 1)  # the last component takes what scope is left

    def forward(self, x, sample=True):
        """x [B, 3, N, N] -> {"log_m" [B, K, N, N], "q" (batch shape [B, K, D]), "mean" [B, K, 3, N, N],
        "mask_logits" [B, K, N, N]}; z is drawn from q, or its mean if not sample."""
        B, K, N = x.shape[0], self.slots, self.image_size
        log_m = self.masks(x)
        xk = x[:, None].expand(B, K, 3, N, N).reshape(B * K, 3, N, N)  # the K components share one VAE
        q = self.vae.posterior(xk, log_m.reshape(B * K, 1, N, N))
        mean, logits = self.vae.decode(q.rsample() if sample else q.mean)
        q = Normal(q.loc.reshape(B, K, -1), q.scale.reshape(B, K, -1))
        return {"log_m": log_m, "q": q, "mean": mean.reshape(B, K, 3, N, N), "mask_logits": logits.reshape(B, K, N, N)}

    def loss(self, x):  # x [B, 3, N, N] in [0, 1] -> (loss per image, {"nll", "kl_z", "kl_masks"})
        out = self(x)
        log_px = Normal(out["mean"], self.sigma[None, :, None, None, None]).log_prob(x[:, None]).sum(2)  # [B, K, N, N]
        nll = -torch.logsumexp(out["log_m"] + log_px, 1).sum((1, 2)).mean()  # the mixture over components
        q = out["q"]
        kl_z = (0.5 * (q.loc ** 2 + q.scale ** 2 - 1) - q.scale.log()).sum((1, 2)).mean()
        log_m, log_m_decoded = out["log_m"], out["mask_logits"].log_softmax(1)
        kl_masks = (log_m.exp() * (log_m - log_m_decoded)).sum((1, 2, 3)).mean()
        loss = nll + self.beta * kl_z + self.gamma * kl_masks
        return loss, {"nll": nll.detach(), "kl_z": kl_z.detach(), "kl_masks": kl_masks.detach()}

    @torch.no_grad()
    def decompose(self, x):  # x [B, 3, N, N] -> {"alpha" [B, K, N, N] summing to 1 over K, "recon" [B, 3, N, N]}
        out = self(x, sample=False)
        alpha = out["log_m"].exp()
        return {"alpha": alpha, "recon": (alpha[:, :, None] * out["mean"]).sum(1).clamp(0, 1)}

    @torch.no_grad()
    def sample(self, n):  # -> [n, 3, N, N] in [0, 1]: each z_k from N(0, I), blended by the decoded masks
        z = torch.randn(n * self.slots, self.vae.latent, device=self.sigma.device)
        mean, logits = self.vae.decode(z)
        N = self.image_size
        masks = logits.reshape(n, self.slots, 1, N, N).softmax(1)
        return (masks * mean.reshape(n, self.slots, 3, N, N)).sum(1).clamp(0, 1)
