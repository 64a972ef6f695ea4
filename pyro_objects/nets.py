"""Networks built from strings in a notation modelled on the paper's Table 5.

The token letters follow the table's style; the defaults below (stride 1, 3×3 kernels,
nearest-neighbour `up2`, 4×4 `cT`) are ours, not the table's caption, and no config in this
repository is a row of the table (docs/DESIGN.md). A network is layers joined by '-', read
left to right:

    c32e       3×3 convolution to 32 channels, then ELU (stride 1, 'same' padding)
    c64k4s2r   4×4 convolution, stride 2, to 64 channels, then ReLU
    cT32e      4×4 transposed convolution, stride 2 (doubles the size), to 32 channels, ELU
    r32e       residual block: x + c32e(c32e(x)) (channels must match)
    b / g      batch norm / group norm (8 groups)
    mp / up2   2×2 max pool / nearest-neighbour upsampling by 2
    d256e      dense (fully connected) to 256 units, ELU; flattens an image input
    v64x4x4    view a vector as a 64×4×4 image
    a trailing activation: e ELU, r ReLU, s sigmoid; none means linear

so `build("c32s2e-b-c64s2e-b-d66", (3, 32, 32))` is the encoder a reader of the
table would draw. U-Nets have skip connections, which the notation does not
express; `UNet` takes its channel list instead.
"""
import math
import re

import torch
from torch import nn

_ACT = {"e": nn.ELU, "r": nn.ReLU, "s": nn.Sigmoid, "": None}
_LAYER = re.compile(r"^(cT|c|r|d)(\d+)(?:k(\d+))?(?:s(\d+))?([ers]?)$")
_VIEW = re.compile(r"^v(\d+)x(\d+)x(\d+)$")


class Residual(nn.Module):
    def __init__(self, channels, act):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), act(),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.act = act()

    def forward(self, x):
        return self.act(x + self.body(x))


class View(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def build(spec, in_shape, name="network"):
    """Build an nn.Sequential from a string in the notation above.

    in_shape: (C, H, W) for an image input or (D,) for a vector input; name: what errors call it.
    Returns the network; its output shape is `net.out_shape`.
    """
    layers, shape = [], tuple(in_shape)
    for token in spec.split("-"):
        try:
            layer, shape = _layer(token, shape)
        except ValueError as e:
            raise ValueError(f"{name} {spec!r}: {e}") from None
        layers.append(layer)
        m = _LAYER.match(token)
        if m and m.group(1) != "r" and _ACT[m.group(5)]:
            layers.append(_ACT[m.group(5)]())
    net = nn.Sequential(*layers)
    net.out_shape = shape
    return net


def _layer(token, shape):
    """One token -> (module, output shape)."""
    if token == "b":
        return (nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])), shape
    if token == "g":
        return nn.GroupNorm(min(8, shape[0]), shape[0]), shape
    if token == "mp":
        return nn.MaxPool2d(2), (shape[0], shape[1] // 2, shape[2] // 2)
    if token == "up2":
        return nn.Upsample(scale_factor=2, mode="nearest"), (shape[0], shape[1] * 2, shape[2] * 2)
    view = _VIEW.match(token)
    if view:
        new = tuple(int(v) for v in view.groups())
        if math.prod(new) != math.prod(shape):
            raise ValueError(f"{token}: cannot view {shape} as {new}")
        return View(new), new
    m = _LAYER.match(token)
    if not m:
        raise ValueError(f"unknown layer {token!r}")
    kind, width, k, s = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    if kind == "d":
        flat = math.prod(shape)
        return nn.Sequential(nn.Flatten(), nn.Linear(flat, width)), (width,)
    if len(shape) != 3:
        raise ValueError(f"{token}: a convolution needs an image input, got shape {shape}")
    c, h, w = shape
    if kind == "r":
        if width != c:
            raise ValueError(f"{token}: residual block needs {c} channels")
        return Residual(c, _ACT[m.group(5)] or nn.Identity), shape
    if kind == "cT":
        k, s = int(k or 4), int(s or 2)
        return nn.ConvTranspose2d(c, width, k, s, padding=(k - s) // 2), (width, h * s, w * s)
    k, s = int(k or 3), int(s or 1)
    return nn.Conv2d(c, width, k, s, padding=(k - 1) // 2), (width, (h + s - 1) // s, (w + s - 1) // s)


class UNet(nn.Module):
    """A U-Net: encoder of stride-2 stages, decoder with skip connections.

    x: [B, C, N, N] -> [B, out_channels, N, N]
    """

    def __init__(self, in_channels, out_channels, channels=(32, 64, 128, 128)):
        super().__init__()
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        c = in_channels
        for width in channels:
            self.down.append(_block(c, width))
            c = width
        for skip in reversed(channels[:-1]):
            self.up.append(_block(c + skip, skip))
            c = skip
        self.head = nn.Conv2d(c, out_channels, 1, bias=False)  # a constant logit shifts no softmax
        self.upsample = Upsample()

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = self.upsample(x, skip.shape[-2:])
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


class Upsample(nn.Module):
    """Nearest-neighbour up-sampling to a given size: x [B, C, h, w] -> [B, C, *size]."""

    def forward(self, x, size):
        return nn.functional.interpolate(x, size=tuple(size), mode="nearest")


def _block(c_in, c_out):
    # no conv bias: the group norm right after it would cancel it
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(min(8, c_out), c_out), nn.ELU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(min(8, c_out), c_out), nn.ELU())
