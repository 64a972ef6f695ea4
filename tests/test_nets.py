import pytest
import torch
from torch import nn

from pyro_objects.config import CONFIGS, quick
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.nets import UNet, Upsample, build


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


def test_unet_upsamples_to_the_size_of_each_skip_connection():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert torch.equal(Upsample()(x, (4, 6)), x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    assert Upsample()(x, (5, 7)).shape == (1, 1, 5, 7)
    assert UNet(3, 2, (4, 4))(torch.zeros(1, 3, 9, 9)).shape == (1, 2, 9, 9)  # 9 -> 4 -> 9


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_config_builds_networks_of_the_shapes_the_model_needs(name):
    for cfg in (CONFIGS[name], quick(CONFIGS[name])):
        model, guide = Model(cfg).eval(), Guide(cfg).eval()
        N, M, J = cfg.image_size, cfg.canvas_size, cfg.slots
        with torch.no_grad():
            out = model(n=2, temperature=0.5)
            logits = guide.theta_logits(out["x_mean"])
        assert out["canvas"].shape == (2, J, 4, M, M) and out["x_mean"].shape == (2, 3, N, N)
        assert logits.shape == (2, J, N * N)
