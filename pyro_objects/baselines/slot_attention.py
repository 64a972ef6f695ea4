"""Slot Attention for object discovery (Locatello et al. 2020, Sec. 2 and the object-discovery
architecture of its appendix), written from the paper.

    features = MLP(LN(CNN(x) + position embedding))      the image as a set of N·N vectors
    slots    = K draws from a learned Gaussian; 3 times:  attention softmax over slots,
               weighted mean of the values, GRU update, residual MLP (layer norms before each)
    each slot broadcast to a grid + position embedding -> CNN -> RGB and an alpha logit per pixel
    alpha    = softmax over slots;  recon = Σ_k alpha_k rgb_k;  loss = MSE(recon, x)

The paper's values: 3 iterations, slot size 64, MLP hidden 128, ε = 1e-8, 5×5 stride-1 encoder
convolutions, Adam at 4e-4 with 10k warm-up steps and decay by half every 100k steps, batch 64.
Two decoders, by image size:
    "sprites"  (64×64, the paper's multi-dSprites model): a 32-channel encoder; the decoder broadcasts
               to the full N×N and runs three 5×5 convolutions of 32 and a 3×3 one to 4 channels.
    "clevr"    (96×96; the paper's CLEVR model is at 128×128): a 64-channel encoder; the decoder
               broadcasts to N/16 (6×6 where the paper's is 8×8), four 5×5 stride-2 transposed
               convolutions of 64 up to N×N, a 5×5 of 64 and a 3×3 to 4 channels.
As in the paper's input pipeline, the encoder sees x scaled to [-1, 1]; we score the MSE in [0, 1] units.
Checked against the authors' released code (the CLEVR model, the schedule) and a public
re-implementation's settings (the multi-dSprites sizes), not against the appendix's own tables.
"""
import torch
from torch import nn

LR, WARMUP, HALF_LIFE, BATCH = 4e-4, 10_000, 100_000, 64


def learning_rate(step, base=LR, warmup=WARMUP, half_life=HALF_LIFE):
    """The paper's schedule: linear warm-up from 0, times a decay by half every half_life steps from step 0."""
    return base * min(1.0, step / warmup) * 0.5 ** (step / half_life)


def optimiser(params):
    """Adam; set each step's rate with learning_rate(step)."""
    return torch.optim.Adam(params, lr=LR, eps=1e-8)


class SoftPositionEmbed(nn.Module):
    """Adds a learned linear map of the 4-channel grid (y, x, 1 - y, 1 - x), each in [0, 1]."""

    def __init__(self, channels, size):
        super().__init__()
        self.proj = nn.Linear(4, channels)
        axis = torch.linspace(0, 1, size)
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("grid", torch.stack([y, x, 1 - y, 1 - x], -1), persistent=False)

    def forward(self, x):  # [B, C, n, n] -> [B, C, n, n]
        return x + self.proj(self.grid).permute(2, 0, 1)


class SlotAttentionModule(nn.Module):
    def __init__(self, slots, in_dim, dim=64, hidden=128, iterations=3, eps=1e-8):
        super().__init__()
        self.slots, self.iterations, self.eps = slots, iterations, eps
        self.norm_inputs, self.norm_slots, self.norm_mlp = nn.LayerNorm(in_dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mu, self.log_sigma = nn.Parameter(torch.empty(1, dim)), nn.Parameter(torch.empty(1, dim))
        nn.init.xavier_uniform_(self.mu)
        nn.init.xavier_uniform_(self.log_sigma)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k, self.v = nn.Linear(in_dim, dim, bias=False), nn.Linear(in_dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, inputs):  # inputs [B, n, in_dim] -> slots [B, K, dim], attention [B, K, n]
        inputs = self.norm_inputs(inputs)
        k, v = self.k(inputs), self.v(inputs)
        B, D = inputs.shape[0], self.mu.shape[-1]
        slots = self.mu + self.log_sigma.exp() * torch.randn(B, self.slots, D, device=inputs.device, dtype=inputs.dtype)
        for _ in range(self.iterations):
            q = self.q(self.norm_slots(slots)) * D ** -0.5
            attention = torch.einsum("bkd,bnd->bkn", q, k).softmax(1)  # slots compete for each input
            weights = (attention + self.eps) / (attention + self.eps).sum(-1, keepdim=True)  # a mean over inputs
            updates = torch.einsum("bkn,bnd->bkd", weights, v)
            slots = self.gru(updates.reshape(-1, D), slots.reshape(-1, D)).reshape(B, -1, D)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attention


def _conv(c_in, c_out, k, relu=True):  # a 'same'-padded stride-1 convolution
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2)] + ([nn.ReLU()] if relu else [])


def _up(c_in, c_out):  # 5×5 transposed convolution, stride 2: doubles the size exactly
    return [nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1), nn.ReLU()]


class SlotAttention(nn.Module):
    def __init__(self, image_size, slots, decoder="clevr", width=None, slot_size=64, mlp_hidden=128, iterations=3):
        super().__init__()
        if decoder not in ("clevr", "sprites"):
            raise ValueError(f"decoder {decoder!r}: choose 'clevr' or 'sprites'")
        width = width or (64 if decoder == "clevr" else 32)
        self.image_size, self.slots = image_size, slots
        self.encoder = nn.Sequential(*_conv(3, width, 5), *_conv(width, width, 5), *_conv(width, width, 5),
                                     *_conv(width, width, 5))
        self.encoder_pos = SoftPositionEmbed(width, image_size)
        self.encoder_mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, slot_size), nn.ReLU(),
                                         nn.Linear(slot_size, slot_size))
        self.slot_attention = SlotAttentionModule(slots, slot_size, slot_size, mlp_hidden, iterations)
        if decoder == "clevr":
            if image_size % 16:
                raise ValueError(f"the 'clevr' decoder doubles its grid four times: {image_size} is not a multiple of 16")
            self.start = image_size // 16
            layers = _up(slot_size, width) + _up(width, width) + _up(width, width) + _up(width, width)
            layers += _conv(width, width, 5)
        else:
            self.start = image_size
            layers = _conv(slot_size, width, 5) + _conv(width, width, 5) + _conv(width, width, 5)
        self.decoder = nn.Sequential(*layers, *_conv(width, 4, 3, relu=False))
        self.decoder_pos = SoftPositionEmbed(slot_size, self.start)

    @classmethod
    def for_config(cls, cfg, slots, **sizes):
        """The paper's multi-dSprites model for 64×64 images and its CLEVR model, scaled, for larger ones;
        sizes: narrower networks (--quick, tests)."""
        return cls(cfg.image_size, slots, **{"decoder": "sprites" if cfg.image_size <= 64 else "clevr", **sizes})

    def forward(self, x):
        """x [B, 3, N, N] in [0, 1] -> {"recon" [B, 3, N, N], "rgb" [B, K, 3, N, N], "alpha" [B, K, N, N],
        "slots" [B, K, D], "attention" [B, K, N·N] (the last iteration's)}"""
        B, N = x.shape[0], self.image_size
        features = self.encoder_pos(self.encoder(2 * x - 1))                 # [B, C, N, N]
        features = self.encoder_mlp(features.flatten(2).transpose(1, 2))     # [B, N·N, D]
        slots, attention = self.slot_attention(features)
        K, D = slots.shape[1:]
        grid = slots.reshape(B * K, D, 1, 1).expand(-1, -1, self.start, self.start)
        out = self.decoder(self.decoder_pos(grid)).reshape(B, K, 4, N, N)
        rgb, alpha = out[:, :, :3], out[:, :, 3].softmax(1)                  # alphas compete for each pixel
        recon = (alpha[:, :, None] * rgb).sum(1)
        return {"recon": recon, "rgb": rgb, "alpha": alpha, "slots": slots, "attention": attention}

    def loss(self, x):  # x [B, 3, N, N] in [0, 1] -> (MSE, {"mse"})
        mse = ((self(x)["recon"] - x) ** 2).mean()
        return mse, {"mse": mse.detach()}

    @torch.no_grad()
    def decompose(self, x):  # x [B, 3, N, N] -> {"alpha" [B, K, N, N] summing to 1 over K, "recon" [B, 3, N, N]}
        out = self(x)
        return {"alpha": out["alpha"], "recon": out["recon"].clamp(0, 1)}
