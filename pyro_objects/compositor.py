"""The fixed compositor G of Sec. 3: place each object's canvas by convolving it
with its position map θ, then alpha-blend background and objects far to near.

Also the adjoint of placement, the attentive crop of Sec. 4: a θ-weighted
average of the M×M windows of an image.

Conventions. A canvas is M×M with its centre at pixel (M//2, M//2). θ is a
map over the N×N image pixels (one-hot, or a relaxed one-hot that sums to 1).
Placing a canvas with a one-hot θ at (r, c) puts the canvas centre at (r, c);
what falls outside the image is cut off. Depth d is in (0, 1); larger d is
farther from the camera.
"""
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len


def place_direct(canvas, theta):  # Eq. 7-8: x_j = θ_j * canvas_j
    """Placement by direct convolution.

    canvas: [B, J, C, M, M], theta: [B, J, N, N] -> [B, J, C, N, N]
    """
    B, J, C, M, _ = canvas.shape
    N = theta.shape[-1]
    # conv2d is a cross-correlation: flip the canvas to convolve. Padding puts
    # the canvas centre (M//2) on the θ pixel for odd and even M alike.
    weight = canvas.flip(-1, -2).reshape(B * J * C, 1, M, M)
    before, after = M - 1 - M // 2, M // 2
    x = theta.unsqueeze(2).expand(B, J, C, N, N).reshape(1, B * J * C, N, N)
    x = F.pad(x, (before, after, before, after))
    return F.conv2d(x, weight, groups=B * J * C).reshape(B, J, C, N, N)


def fft_length(N, M):
    """The shortest FFT length (of factors 2, 3, 5) at which circular convolution places and crops
    without wrap-around. Only N image pixels of the N + M - 1 of a full convolution are kept, so
    the wrap may fold onto the discarded ones: N + M//2 suffices for odd and even M alike."""
    return next_fast_len(max(N + M // 2, M), real=True)


def place_fft(canvas, theta):  # Eq. 7-8, through the FFT: same answer, cheaper for large M
    """canvas: [B, J, C, M, M], theta: [B, J, N, N] -> [B, J, C, N, N]"""
    M, N = canvas.shape[-1], theta.shape[-1]
    L = fft_length(N, M)
    spectrum = torch.fft.rfft2(canvas, s=(L, L)) * torch.fft.rfft2(theta, s=(L, L)).unsqueeze(2)
    full = torch.fft.irfft2(spectrum, s=(L, L))  # the full convolution, its tail folded onto its head
    return full[..., M // 2:M // 2 + N, M // 2:M // 2 + N]


def place(canvas, theta, method="fft"):
    """Move each canvas into the image: [B, J, C, M, M] x [B, J, N, N] -> [B, J, C, N, N]."""
    if method == "fft":
        return place_fft(canvas, theta)
    if method == "direct":
        return place_direct(canvas, theta)
    raise ValueError(f"unknown placement method {method!r}: use 'fft' or 'direct'")


def crop_direct(x, theta, M):  # Sec. 4, attentive encoding: cross-correlate x with θ_j
    """The θ-weighted average of the M×M windows of x, each centred on a pixel.

    x: [B, C, N, N], theta: [B, J, N, N] -> [B, J, C, M, M]
    """
    B, C, N, _ = x.shape
    J = theta.shape[1]
    before, after = M // 2, M - 1 - M // 2
    padded = F.pad(x, (before, after, before, after))  # [B, C, N+M-1, N+M-1]
    # One group per (image, slot, channel): the kernel is θ_j, the input its image.
    inp = padded.unsqueeze(1).expand(B, J, C, N + M - 1, N + M - 1).reshape(1, B * J * C, N + M - 1, N + M - 1)
    weight = theta.unsqueeze(2).expand(B, J, C, N, N).reshape(B * J * C, 1, N, N)
    return F.conv2d(inp, weight, groups=B * J * C).reshape(B, J, C, M, M)


def crop_fft(x, theta, M):  # Sec. 4, attentive encoding through the FFT
    """x: [B, C, N, N], theta: [B, J, N, N] -> [B, J, C, M, M]"""
    N = x.shape[-1]
    L = fft_length(N, M)
    # x delayed by M//2 pixels, so that window pixel t is shift t - M//2: the crop is a slice (a gather's backward is slow)
    spectrum = torch.fft.rfft2(F.pad(x, (M // 2, 0, M // 2, 0)), s=(L, L)).unsqueeze(1) * \
        torch.fft.rfft2(theta, s=(L, L)).conj().unsqueeze(2)
    corr = torch.fft.irfft2(spectrum, s=(L, L))  # corr[t] = Σ_p θ[p] x[p + t - M//2]
    return corr[..., :M, :M]


def crop(x, theta, M, method="fft"):
    """Attentive crops: [B, C, N, N] x [B, J, N, N] -> [B, J, C, M, M]."""
    if method == "fft":
        return crop_fft(x, theta, M)
    if method == "direct":
        return crop_direct(x, theta, M)
    raise ValueError(f"unknown placement method {method!r}: use 'fft' or 'direct'")


def in_front(d, tau):  # Eq. 9: softened depth order, after the soft rasterizer of Liu et al. (2019)
    """P(object k is in front of object j) = σ((d_j - d_k) / τ), zero on the diagonal.

    d: [B, J] -> [B, J, J] indexed [b, j, k]
    """
    if tau > 0:
        p = torch.sigmoid((d[:, :, None] - d[:, None, :]) / tau)
    else:  # the hard order, for evaluation
        p = (d[:, :, None] > d[:, None, :]).to(d.dtype)
    return p * (1 - torch.eye(d.shape[1], dtype=d.dtype, device=d.device))


def blend_weights(alpha, d, tau):  # Eq. 10-11: alpha-blend far to near
    """How much of each object, and of the background, each pixel shows.

    With a hard order this is ordinary back-to-front alpha compositing:
    object j shows α_j times the transmittance of everything in front of it.

    alpha: [B, J, N, N], d: [B, J] -> (w: [B, J, N, N], w_bg: [B, N, N])
    """
    front = in_front(d, tau)  # [B, J, K]
    J = alpha.shape[1]
    transmittance = 1 - front[:, :, 0, None, None] * alpha[:, None, 0]  # Eq. 11: Π_k (1 - P(k before j) α_k)
    for k in range(1, J):
        transmittance = transmittance * (1 - front[:, :, k, None, None] * alpha[:, None, k])
    w_bg = 1 - alpha[:, 0]  # Π_k (1 - α_k)
    for k in range(1, J):
        w_bg = w_bg * (1 - alpha[:, k])
    return alpha * transmittance, w_bg


def softmax_weights(alpha, d, tau):  # Eq. 9-11 read as the soft rasterizer's normalised blend (Liu et al. 2019)
    """w_j ∝ α_j exp(-d_j / τ) and w_bg ∝ exp(-1 / τ) (the background at the far plane d = 1), normalised
    so that every pixel's weights sum to one; as τ → 0 the nearest covering object takes the pixel.

    alpha: [B, J, N, N], d: [B, J] -> (w: [B, J, N, N], w_bg: [B, N, N])
    """
    logits = torch.log(alpha.clamp_min(1e-6)) - d[:, :, None, None] / tau
    background = torch.full_like(logits[:, :1], -1.0 / tau)
    w = torch.softmax(torch.cat([logits, background], 1), 1)
    return w[:, :-1], w[:, -1]


BLENDS = {"order": blend_weights, "softmax": softmax_weights}  # cfg.depth_blend -> its weights


def compose(placed, d, x_bg, tau, blend="order"):  # Eq. 12: the image mean G(θ, z, d, z_bg)
    """placed: [B, J, 4, N, N] (RGB, alpha), d: [B, J], x_bg: [B, 3, N, N] -> [B, 3, N, N];
    blend: 'order' (blend_weights) or 'softmax' (softmax_weights)."""
    w, w_bg = BLENDS[blend](placed[:, :, 3], d, tau)
    return (w.unsqueeze(2) * placed[:, :, :3]).sum(1) + w_bg.unsqueeze(1) * x_bg


def modal_segmentation(alpha, d, threshold=0.3):
    """Each pixel goes to the nearest slot whose alpha exceeds the threshold, else background.

    alpha: [B, J, N, N], d: [B, J] -> [B, N, N] of slot index, -1 for background
    """
    covers = alpha > threshold
    depth = torch.where(covers, d[:, :, None, None].expand_as(alpha), torch.full_like(alpha, float("inf")))
    nearest = depth.argmin(1)
    return torch.where(covers.any(1), nearest, torch.full_like(nearest, -1))
