"""The paper's networks, run faster: bf16 autocast, channels_last layout, torch.compile.

`accelerate(model, guide, speed)` changes the convolutional networks of a Model and a
Guide in place (ζ, F_obj, F_bg, the position U-Net and the two encoders; ξ and Q(y) are
small dense networks and stay as they are). Parameters and state_dict keys do not change,
so a checkpoint loads whether or not either side was accelerated. Placement, blending and
the likelihood stay in float32.
"""
import pyro
import torch
from torch import nn

from ..nets import Upsample


def accelerate(model, guide, speed, compile_only=None):
    """Convert model's and guide's convolutional networks in place as speed asks; with compile_only (names
    of their children, e.g. {"F_obj"}), only those networks are compiled, the others run as plain PyTorch."""
    # Register the weights with Pyro before their layout changes: the param store keeps a contiguous
    # tensor, so it would hold a copy of a channels_last weight, and SVI would train the copy.
    pyro.module("model", model)
    pyro.module("guide", guide)
    if speed.compile:
        # nn.Module.compile runs every network through one shared frame, and Dynamo caches per frame: each
        # network, grad mode and input shape is an entry, more than the default limit of 8.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    names = {id(m): n for n, m in [*model.named_children(), *guide.named_children()]}
    for net in convolutional(model) + convolutional(guide):
        for module in net.modules():
            if isinstance(module, Upsample):
                module.__class__ = BroadcastUpsample  # same module, faster backward
            if isinstance(module, nn.GroupNorm) and speed.compile and speed.channels_last:
                module.__class__ = ChannelGroupNorm
        if speed.channels_last:
            net.to(memory_format=torch.channels_last)
        net.forward = _fast_forward(net.forward, speed)
        if speed.compile and (compile_only is None or names[id(net)] in compile_only):
            # dynamic=False, else Dynamo takes each new network in the shared frame for a shape change. Inductor
            # keeps NCHW for graphs with a convolution of fewer output than input channels (the U-Net's 96 -> 32)
            # and then copies every activation cuDNN reads in channels_last: ask for the layout.
            net.compile(dynamic=False, options={"force_layout_optimization": True} if speed.channels_last else None)
    if speed.compile:  # Inductor fuses the blend's dozen passes over [B, J, J, N, N] into a few
        model.blend = torch.compile(model.blend, dynamic=False)


def convolutional(module):
    """The direct children of module that hold a convolution."""
    return [m for m in module.children()
            if any(isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)) for c in m.modules())]


def _fast_forward(forward, speed):
    """forward(x) with an image x in channels_last, under bf16 autocast, returning float32."""
    def fast_forward(x):
        if speed.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=speed.precision == "bf16"):
            return forward(x).float()
    return fast_forward


class BroadcastUpsample(Upsample):
    """Nearest-neighbour up-sampling; to exactly twice the size, written as a broadcast, whose gradient
    is a sum over each 2×2 block that Inductor fuses (interpolate's is a gather)."""

    def forward(self, x, size):
        b, c, h, w = x.shape
        if tuple(size) != (2 * h, 2 * w):
            return super().forward(x, size)
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and c > 1 \
            else torch.contiguous_format
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w).contiguous(
            memory_format=layout)


class ChannelGroupNorm(nn.GroupNorm):
    """nn.GroupNorm; compiled on a channels_last input, `group_norm_by_channel` (the same numbers)."""

    def forward(self, x):
        if torch.compiler.is_compiling() and x.is_contiguous(memory_format=torch.channels_last):  # False unless 4-D
            return group_norm_by_channel(x, self.num_groups, self.weight, self.bias, self.eps)
        return super().forward(x)


def group_norm_by_channel(x, groups, weight, bias, eps):
    """Group norm from per-channel statistics: reductions over H and W and broadcasts only, so a
    channels_last x gives a channels_last output and gradient. The stock operator reshapes x to
    [B, G, -1], which copies channels_last tensors to NCHW and leaves cuDNN a gradient to copy back.
    Both moments come from one read of x (var = E[x²] − E[x]², in float32), where centring x first
    needs a second, and the normalisation is one multiply-add, x·s + t: compiled, the step is 14%
    shorter (docs/PERFORMANCE.md, Speed levers).

    x: [B, C, H, W] -> float32 [B, C, H, W], as autocast runs group norm"""
    B, C = x.shape[:2]

    def group_mean(per_channel):  # [B, C] -> each channel's group mean, [B, C, 1, 1]
        g = per_channel.reshape(B, groups, C // groups).mean(-1, keepdim=True)
        return g.expand(B, groups, C // groups).reshape(B, C, 1, 1)

    x = x.float()
    mean = group_mean(x.mean((2, 3)))
    var = (group_mean(x.square().mean((2, 3))) - mean.square()).clamp_min(0)  # rounding can leave it just under 0
    scale = torch.rsqrt(var + eps) * weight[:, None, None]
    return x * scale + (bias[:, None, None] - mean * scale)
