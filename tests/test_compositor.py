import pytest
import torch

from pyro_objects.compositor import blend_weights, compose, crop, in_front, modal_segmentation, place


def one_hot_map(B, J, N, where):
    theta = torch.zeros(B, J, N, N)
    for j, (r, c) in enumerate(where):
        theta[:, j, r, c] = 1
    return theta


@pytest.mark.parametrize("M", [7, 8])
@pytest.mark.parametrize("method", ["fft", "direct"])
def test_one_hot_theta_puts_canvas_centre_on_its_pixel(M, method):
    N = 20
    canvas = torch.zeros(1, 2, 1, M, M)
    canvas[0, 0, 0, M // 2, M // 2] = 1.0   # a single bright pixel at the canvas centre
    canvas[0, 1, 0, 0, 0] = 1.0             # and one at the canvas corner
    placed = place(canvas, one_hot_map(1, 2, N, [(5, 13), (10, 10)]), method)
    assert (placed[0, 0, 0] > 0.5).nonzero().tolist() == [[5, 13]]  # FFT leaves ~1e-7 elsewhere
    assert (placed[0, 1, 0] > 0.5).nonzero().tolist() == [[10 - M // 2, 10 - M // 2]]
    assert torch.allclose(placed.sum(), torch.tensor(2.0), atol=1e-5)


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("where", [(0, 0), (9, 9)])
def test_placement_cuts_off_what_falls_outside(method, where):
    canvas = torch.ones(1, 1, 1, 5, 5)
    placed = place(canvas, one_hot_map(1, 1, 10, [where]), method)
    assert torch.allclose(placed.sum(), torch.tensor(9.0), atol=1e-5)  # the 3×3 quarter inside the image


@pytest.mark.parametrize("M", [8, 9, 10, 14])  # the FFT's length N + M//2: 20 and 20 as they are, 21 and 23 rounded up to 24
def test_fft_and_direct_placement_agree(M):
    canvas = torch.rand(2, 3, 4, M, M)
    theta = torch.softmax(torch.randn(2, 3, 16 * 16), -1).reshape(2, 3, 16, 16)
    assert torch.allclose(place(canvas, theta, "fft"), place(canvas, theta, "direct"), atol=1e-5)


@pytest.mark.parametrize("M", [7, 8, 9, 13])  # 8 and 9: the FFT's length N + M//2 = 20 exactly, no slack
def test_crop_is_the_window_around_a_one_hot_theta_and_the_adjoint_of_placement(M):
    N = 16
    x = torch.rand(2, 3, N, N)
    theta = one_hot_map(2, 1, N, [(8, 9)])
    window = crop(x, theta, M, "direct")[:, 0]
    assert torch.allclose(window, x[:, :, 8 - M // 2:8 - M // 2 + M, 9 - M // 2:9 - M // 2 + M])
    soft = torch.softmax(torch.randn(2, 2, N * N), -1).reshape(2, 2, N, N)
    assert torch.allclose(crop(x, soft, M, "fft"), crop(x, soft, M, "direct"), atol=1e-5)
    canvas = torch.rand(2, 2, 3, M, M)  # <place(c, θ), x> = <c, crop(x, θ)>
    lhs = (place(canvas, soft, "direct") * x.unsqueeze(1)).sum()
    rhs = (canvas * crop(x, soft, M, "direct")).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4)


def two_opaque_squares():
    N = 12
    placed = torch.zeros(1, 2, 4, N, N)
    placed[0, 0, :3, 2:8, 2:8] = torch.tensor([1.0, 0, 0])[:, None, None]  # red square
    placed[0, 0, 3, 2:8, 2:8] = 1
    placed[0, 1, :3, 5:11, 5:11] = torch.tensor([0, 0, 1.0])[:, None, None]  # blue square
    placed[0, 1, 3, 5:11, 5:11] = 1
    return placed, torch.full((1, 3, N, N), 0.5)


@pytest.mark.parametrize("tau", [0.0, 0.01])
def test_nearer_object_occludes_the_farther_and_swapping_depths_swaps_it(tau):
    placed, bg = two_opaque_squares()
    red_in_front = compose(placed, torch.tensor([[0.2, 0.8]]), bg, tau)
    blue_in_front = compose(placed, torch.tensor([[0.8, 0.2]]), bg, tau)
    overlap = (slice(None), 6, 6)
    assert torch.allclose(red_in_front[0][overlap], torch.tensor([1.0, 0, 0]), atol=1e-3)
    assert torch.allclose(blue_in_front[0][overlap], torch.tensor([0, 0, 1.0]), atol=1e-3)
    # away from the overlap each square and the background are untouched
    for image in (red_in_front, blue_in_front):
        assert torch.allclose(image[0, :, 3, 3], torch.tensor([1.0, 0, 0]), atol=1e-3)
        assert torch.allclose(image[0, :, 10, 10], torch.tensor([0, 0, 1.0]), atol=1e-3)
        assert torch.allclose(image[0, :, 0, 11], torch.full((3,), 0.5))


def test_blend_weights_are_eq_11s_products_with_their_gradients_even_at_opaque_pixels():
    alpha = torch.rand(2, 4, 5, 5)
    alpha[0, 1, 2, 2] = alpha[1, 2, 3, 3] = alpha[1, 3, 3, 3] = 1.0  # opaque: a factor 1 - α of zero (two in one pixel)
    d = torch.rand(2, 4)
    a, b = alpha.clone().requires_grad_(), alpha.clone().requires_grad_()
    w, w_bg = blend_weights(a, d, 0.05)
    front = in_front(d, 0.05)  # Eq. 11 with torch.prod: w_j = α_j Π_k (1 - P(k before j) α_k), w_bg = Π_k (1 - α_k)
    w_ref = b * (1 - front[..., None, None] * b[:, None]).prod(2)
    w_bg_ref = (1 - b).prod(1)
    assert torch.allclose(w, w_ref, atol=1e-6) and torch.allclose(w_bg, w_bg_ref, atol=1e-6)
    g, g_bg = torch.rand_like(w), torch.rand_like(w_bg)
    ((w * g).sum() + (w_bg * g_bg).sum()).backward()
    ((w_ref * g).sum() + (w_bg_ref * g_bg).sum()).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_hard_order_is_back_to_front_alpha_compositing():
    alpha = torch.rand(3, 4, 5, 5)
    d = torch.rand(3, 4)
    w, w_bg = blend_weights(alpha, d, 0.0)
    for b in range(3):
        remaining = torch.ones(5, 5)  # composite near to far by hand
        for j in d[b].argsort().tolist():
            assert torch.allclose(w[b, j], alpha[b, j] * remaining, atol=1e-6)
            remaining = remaining * (1 - alpha[b, j])
        assert torch.allclose(w_bg[b], remaining, atol=1e-6)
        assert torch.allclose(w[b].sum(0) + w_bg[b], torch.ones(5, 5), atol=1e-5)


def test_modal_segmentation_takes_the_nearest_slot_over_threshold():
    placed, _ = two_opaque_squares()
    seg = modal_segmentation(placed[:, :, 3], torch.tensor([[0.7, 0.3]]))
    assert seg[0, 6, 6] == 1 and seg[0, 3, 3] == 0 and seg[0, 0, 0] == -1
    seg = modal_segmentation(placed[:, :, 3] * 0.2, torch.tensor([[0.7, 0.3]]))
    assert (seg == -1).all()  # alphas under 0.3 belong to nobody


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown placement"):
        place(torch.zeros(1, 1, 1, 3, 3), torch.zeros(1, 1, 4, 4), "magic")


def test_the_softmax_blend_sums_to_one_where_the_soft_order_does_not():
    alpha = torch.ones(1, 3, 4, 4)  # three opaque objects at one depth
    d = torch.full((1, 3), 0.4)
    w, w_bg = blend_weights(alpha, d, 0.05)
    assert torch.allclose(w.sum(1) + w_bg, torch.full((1, 4, 4), 0.75))  # 3 × 0.5 × 0.5: ours loses a quarter
    from pyro_objects.compositor import softmax_weights
    w, w_bg = softmax_weights(alpha, d, 0.05)
    assert torch.allclose(w.sum(1) + w_bg, torch.ones(1, 4, 4)) and torch.allclose(w, torch.full_like(w, 1 / 3), atol=1e-4)
    alpha = torch.rand(2, 4, 5, 5)
    w, w_bg = softmax_weights(alpha, torch.rand(2, 4), 0.01)
    assert torch.allclose(w.sum(1) + w_bg, torch.ones(2, 5, 5), atol=1e-6)
    near_first = softmax_weights(torch.ones(1, 2, 1, 1), torch.tensor([[0.2, 0.6]]), 0.01)[0]
    assert near_first[0, 0, 0, 0] > 0.999  # as τ → 0 the nearest covering object takes the pixel


@pytest.mark.parametrize("d, expected", [(0.5, 15), (0.95, 0)])
def test_faint_alpha_takes_the_background_under_the_softmax_blend_only_far_from_d_1(d, expected):
    from pyro_objects.tools.blend_patches import taken
    placed = torch.zeros(1, 1, 4, 4, 4)
    placed[:, :, 3] = 1e-3  # a faint canvas ...
    placed[0, 0, 3, 1, 1] = 0.9  # ... around a one-pixel shape
    d = torch.tensor([[d]])
    # α e^((1 - d)/τ): 1e-3 · e^10 ≈ 22 beats the background's 1 at d = 0.5; 1e-3 · e^1 does not at d = 0.95
    assert taken(placed[:, :, 3], d, "softmax", 0.05).tolist() == [expected]
    assert taken(placed[:, :, 3], d, "order", 0.05).tolist() == [0]  # the soft order's weight never exceeds alpha
