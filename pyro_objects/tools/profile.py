"""Where the time of one training step goes, by kind of kernel.

    pyro-objects profile polygons --batch 1000 --variant bf16+compile+channels_last

Profiles a few plain-PyTorch training steps (`bench.plain_loss`, its backward and the Adam
update; the same arithmetic as a Pyro step) with `torch.profiler`, then lists the time a
step spends in each kind of kernel (convolutions and matrix products, copies and casts,
FFTs, Inductor's fused kernels, ...) and the largest single kernels. By shape, it lists
the operators instead, with the shapes of their inputs, which tells which network a kernel
belongs to. On a GPU it counts kernel time; on a CPU, operator time.
"""
import collections

import pyro
import torch
from torch.profiler import ProfilerActivity, profile

from .. import data as datasets
from .. import fast
from ..elbo import from_config
from ..guide import Guide
from ..model import Model
from .bench import plain_training_step, variant

KINDS = [  # the first kind whose words a kernel's (or operator's) name contains, lower-cased
    ("fft", ["fft"]),
    ("Inductor (compiled)", ["triton"]),
    ("copy and layout", ["copy", "nchwtonhwc", "nhwctonchw"]),
    ("conv/gemm", ["gemm", "conv", "cutlass", "xmma", "cudnn", "cublas", "winograd", "aten::mm", "addmm", "bmm"]),
    ("norm", ["norm", "moments", "gammabeta"]),
    ("adam", ["adam", "multi_tensor"]),
    ("reduction", ["reduce", "aten::sum"]),
]


def kind(name):
    name = name.lower()
    return next((k for k, words in KINDS if any(w in name for w in words)), "other elementwise")


def profile_step(cfg, device="cpu", batch=100, variant_name="fp32", steps=5, top=15, by_shape=False):
    """The profile of `steps` plain training steps of cfg at this batch size and variant, as lines of text."""
    speed = variant(variant_name)
    torch.manual_seed(0)
    model, guide = fast.accelerate(Model(cfg).to(device), Guide(cfg).to(device), speed, device)
    x = datasets.load(cfg.dataset, "eval", batch, device=device).batch(torch.arange(batch), device)
    step = plain_training_step(model, guide, x, 1.0, cfg.sigma[0], from_config(cfg))
    gpu = device != "cpu"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    with pyro.validation_enabled(False):
        for _ in range(3):  # warm-up: compilation, cuDNN's and cuFFT's plans
            step()
        sync()
        activities = [ProfilerActivity.CUDA] if gpu and not by_shape else [ProfilerActivity.CPU] + (
            [ProfilerActivity.CUDA] if gpu else [])
        with profile(activities=activities, record_shapes=by_shape) as prof:
            for _ in range(steps):
                step()
            sync()

    def self_time(e):  # microseconds over all profiled steps
        return e.self_device_time_total if gpu else e.self_cpu_time_total

    events = [e for e in prof.key_averages(group_by_input_shape=by_shape) if self_time(e) > 0]
    largest = sorted(events, key=self_time, reverse=True)[:top]
    lines = [f"{cfg.dataset}, batch {batch}, {variant_name}, {device}"]
    if by_shape:
        return lines + [f"{self_time(e) / steps / 1e3:8.2f} ms {e.count // steps:5d}x  {e.key[:40]:40s} {e.input_shapes}"
                        for e in largest]
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        total[kind(e.key)] += self_time(e)
        count[kind(e.key)] += e.count
    everything = sum(total.values())
    lines += [f"{everything / steps / 1e3:.1f} ms a step in {sum(count.values()) // steps} "
              f"{'kernels' if gpu else 'operators'}", "", "| kind | ms a step | share | count a step |", "|---|---|---|---|"]
    lines += [f"| {k} | {t / steps / 1e3:.2f} | {100 * t / everything:.1f}% | {count[k] // steps} |"
              for k, t in total.most_common()]
    return lines + [""] + [f"{self_time(e) / steps / 1e3:8.2f} ms {e.count // steps:5d}x  [{kind(e.key)}] {e.key[:100]}"
                           for e in largest]
