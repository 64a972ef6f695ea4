import pytest
import torch
from torch import nn

from pyro_objects.config import CONFIGS, quick
from pyro_objects.nets import UNet, build


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


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_config_builds(name):
    from pyro_objects.guide import Guide
    from pyro_objects.model import Model
    for cfg in (CONFIGS[name], quick(CONFIGS[name])):
        Model(cfg), Guide(cfg)


def test_bf16_networks_stay_close_to_float32():
    torch.manual_seed(0)
    net = build("c16s2e-c32s2e-d64e-d8", (3, 16, 16))
    x = torch.rand(4, 3, 16, 16)
    from pyro_objects.nets import run
    full, half = run(net, x), run(net, x, "bf16")
    assert half.dtype == torch.float32
    assert (full - half).norm() < 3e-2 * full.norm()  # bf16 keeps about 3 significant digits
