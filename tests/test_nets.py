import shutil

import pyro
import pytest
import torch
from torch import nn

from pyro_objects.config import CONFIGS, POLYGONS, quick
from pyro_objects.elbo import from_config
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.nets import UNet, build, group_norm_by_channel, upsample_nearest


def test_table5_strings_build_the_layers_they_name():
    net = build("c32s2e-b-c64k4s2r-mp-d66", (3, 32, 32))
    kinds = [type(m) for m in net]
    assert kinds[:4] == [nn.Conv2d, nn.ELU, nn.BatchNorm2d, nn.Conv2d]
    assert net[3].kernel_size == (4, 4) and net[3].stride == (2, 2)
    assert net.out_shape == (66,)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 66)


def test_decoder_strings_upsample_to_the_canvas():
    net = build("d256e-v16x4x4-cT16e-up2-r16e-c4s", (8,))
    assert net.out_shape == (4, 16, 16)
    out = net(torch.randn(3, 8))
    assert out.shape == (3, 4, 16, 16) and out.min() >= 0 and out.max() <= 1  # sigmoid


def test_bad_tokens_are_named():
    with pytest.raises(ValueError, match="unknown layer 'x9'"):
        build("c8e-x9", (3, 8, 8))
    with pytest.raises(ValueError, match="cannot view"):
        build("d10-v3x2x2", (4,))


def test_unet_keeps_the_image_size():
    assert UNet(3, 5, (8, 16, 16))(torch.zeros(2, 3, 24, 24)).shape == (2, 5, 24, 24)


@pytest.mark.parametrize("size", [(8, 10), (9, 10)])  # twice the size (the broadcast), and not (interpolate)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_unet_upsampling_is_interpolate_nearest(size, layout):
    x = torch.randn(2, 3, 4, 5).to(memory_format=layout).requires_grad_()
    up, ref = upsample_nearest(x, size), nn.functional.interpolate(x, size=size, mode="nearest")
    assert torch.equal(up, ref) and up.is_contiguous(memory_format=layout)
    g = torch.randn_like(ref)
    assert torch.allclose(*(torch.autograd.grad(y, x, g)[0] for y in (up, ref)), atol=1e-6)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_config_builds(name):
    for cfg in (CONFIGS[name], quick(CONFIGS[name])):
        Model(cfg), Guide(cfg)


def test_bf16_networks_stay_close_to_float32():
    torch.manual_seed(0)
    net = build("c16s2e-c32s2e-d64e-d8", (3, 16, 16))
    x = torch.rand(4, 3, 16, 16)
    from pyro_objects.nets import run
    full, half = run(net, x, POLYGONS), run(net, x, POLYGONS.replace(precision="bf16"))
    assert half.dtype == torch.float32
    assert (full - half).norm() < 3e-2 * full.norm()  # bf16 keeps about 3 significant digits


# A U-Net of one stage, without max pooling. Max pooling sends the gradient to the largest value of each 2×2
# window; where two differ by rounding alone, other kernels may pick the other one: with the quick config's
# three stages, channels_last moves the gradient by 1e-3 of its norm (the loss agrees to 1e-7).
SMOOTH = quick(POLYGONS).replace(position_unet=(8,))


def loss_and_grads(cfg, state, x):
    """The stage-1 loss on x of networks loaded (strictly) from state, and its gradient over every parameter."""
    model, guide = Model(cfg), Guide(cfg)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    pyro.set_rng_seed(5)
    loss = from_config(cfg).differentiable_loss(model, guide, x, temperature=0.7, sigma=0.1)
    grads = torch.autograd.grad(loss, list(model.parameters()) + list(guide.parameters()), allow_unused=True)
    return loss, torch.cat([g.flatten() for g in grads if g is not None])


def changes_in_loss_and_grads(cfg, changes, batch=4):
    """Relative changes of the loss and of its gradient when cfg takes changes; the networks of both
    load the state_dict of the changed ones and make the same draws."""
    changed = cfg.replace(**changes)
    state = {"model": Model(changed).state_dict(), "guide": Guide(changed).state_dict()}
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size)
    (loss, grads), (new_loss, new_grads) = loss_and_grads(cfg, state, x), loss_and_grads(changed, state, x)
    return ((new_loss - loss).abs() / loss.abs()).item(), ((new_grads - grads).norm() / grads.norm()).item()


def test_channels_last_networks_give_the_same_loss_and_gradients():
    assert Guide(SMOOTH.replace(channels_last=True)).position.down[0][0].weight.is_contiguous(
        memory_format=torch.channels_last)
    assert changes_in_loss_and_grads(quick(POLYGONS), {"channels_last": True})[0] <= 1e-5
    loss, grads = changes_in_loss_and_grads(SMOOTH, {"channels_last": True})
    assert loss <= 1e-5 and grads <= 1e-5


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")),
                    reason="torch.compile on a CPU (Inductor) needs a C++ compiler, and none is on PATH")
@pytest.mark.parametrize("changes", [{"compile": True},
                                     {"compile": True, "channels_last": True}])  # here the group norms go by channel
def test_compiled_networks_give_the_same_loss_and_their_checkpoints_load_uncompiled(changes):  # ~20 s of Inductor each
    loss, grads = changes_in_loss_and_grads(SMOOTH, changes, batch=2)
    assert loss <= 1e-4 and grads <= 1e-4


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_group_norm_by_channel_is_group_norm(layout):
    x = (3 + 2 * torch.randn(4, 16, 8, 8)).contiguous(memory_format=layout).requires_grad_()
    weight, bias = torch.randn(16, requires_grad=True), torch.randn(16, requires_grad=True)
    ours = group_norm_by_channel(x, 4, weight, bias, 1e-5)
    stock = nn.functional.group_norm(x, 4, weight, bias, 1e-5)
    assert torch.allclose(ours, stock, atol=1e-5)
    assert ours.is_contiguous(memory_format=layout)
    g = torch.randn_like(stock).contiguous(memory_format=layout)
    grads = torch.autograd.grad(ours, (x, weight, bias), g)
    for a, b in zip(grads, torch.autograd.grad(stock, (x, weight, bias), g)):
        assert torch.allclose(a, b, atol=1e-4)
    assert grads[0].is_contiguous(memory_format=layout)
