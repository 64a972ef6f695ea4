from click.testing import CliRunner

from pyro_objects.cli import main
from pyro_objects.tools.profile import kind


def test_kernel_names_sort_into_kinds():
    assert kind("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "conv/gemm"
    assert kind("void at::native::elementwise_kernel<128, 4, gpu_kernel_impl_nocast<direct_copy_kernel_cuda>>") \
        == "copy and layout"
    assert kind("void cudnn::engines_precompiled::nchwToNhwcKernel<float>") == "copy and layout"
    assert kind("triton_poi_fused__to_copy_convolution_elu_3") == "Inductor (compiled)"
    assert kind("void regular_fft<90u, EPT<9u, 10u>>") == "fft"
    assert kind("void at::native::vectorized_elementwise_kernel<4, elu_kernel>") == "other elementwise"


def test_the_shares_of_a_profiled_step_add_up_to_the_whole_step():
    result = CliRunner().invoke(main, ["profile", "polygons", "--quick", "--device", "cpu", "--batch", "4", "--steps", "1"])
    assert result.exit_code == 0, result.output
    rows = [line.split("|")[1:-1] for line in result.output.splitlines() if line.startswith("| ") and "%" in line]
    shares = {name.strip(): float(share.strip().rstrip("%")) for name, _, share, _ in rows}
    assert abs(sum(shares.values()) - 100) < 0.5
    assert shares["conv/gemm"] > 0 and shares["fft"] > 0  # every step convolves and places by FFT
