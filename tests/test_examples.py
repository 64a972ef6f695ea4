import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script, figures", [("place_objects.py", ["place-before.png", "place-after.png"]),
                                             ("bring_to_front.py", None)])
def test_example_script_runs_and_writes_its_figures(script, figures, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(tmp_path), "--n", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(written) == 2, written
    if figures:
        assert written == sorted(figures)


def _profile_step_module():
    spec = importlib.util.spec_from_file_location("profile_step", EXAMPLES / "profile_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_step_sorts_kernel_names_into_kinds():
    kind = _profile_step_module().kind
    assert kind("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc") == "conv/gemm"
    assert kind("void at::native::elementwise_kernel<128, 4, gpu_kernel_impl_nocast<direct_copy_kernel_cuda>>") \
        == "copy and layout"
    assert kind("void cudnn::engines_precompiled::nchwToNhwcKernel<float>") == "copy and layout"
    assert kind("triton_poi_fused__to_copy_convolution_elu_3") == "Inductor (compiled)"
    assert kind("void regular_fft<90u, EPT<9u, 10u>>") == "fft"
    assert kind("void at::native::vectorized_elementwise_kernel<4, elu_kernel>") == "other elementwise"


def test_profile_step_shares_add_up_to_the_whole_step():
    result = subprocess.run([sys.executable, str(EXAMPLES / "profile_step.py"), "polygons", "--quick", "--device", "cpu",
                             "--batch", "4", "--steps", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "%" in line]
    shares = {name.strip(): float(share.strip().rstrip("%")) for name, _, share, _ in rows}
    assert abs(sum(shares.values()) - 100) < 0.5
    assert shares["conv/gemm"] > 0 and shares["fft"] > 0  # every step convolves and places by FFT
