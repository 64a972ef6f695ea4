"""Where the time of one training step goes, by kind of kernel.

    python examples/profile_step.py polygons --batch 1000 --variant bf16+compile+channels_last

Profiles a few plain-PyTorch training steps (`bench.plain_loss`, its backward and the Adam
update; the same arithmetic as a Pyro step) with `torch.profiler`, then prints the time a
step spends in each kind of kernel (convolutions and matrix products, copies and casts,
FFTs, Inductor's fused kernels, ...) and the largest single kernels. With --by-shape it
prints the operators instead, with the shapes of their inputs, which tells which network
a kernel belongs to. On a GPU it counts kernel time; on a CPU, operator time.
"""
import argparse
import collections

import pyro
import torch
from torch.profiler import ProfilerActivity, profile

from pyro_objects import data as datasets
from pyro_objects.bench import plain_training_step, variant
from pyro_objects.config import config_for, quick
from pyro_objects.guide import Guide
from pyro_objects.model import Model
from pyro_objects.train import stage_svi

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="polygons")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--variant", default="fp32", help="as `pyro-objects bench --variants`, without graphs")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--by-shape", action="store_true", help="operators with their input shapes")
    parser.add_argument("--quick", action="store_true", help="the tiny networks of --quick runs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    pyro.enable_validation(False)
    cfg = config_for(args.dataset)
    cfg = (quick(cfg) if args.quick else cfg).replace(**variant(args.variant))
    torch.manual_seed(0)
    model, guide = Model(cfg).to(args.device), Guide(cfg).to(args.device)
    x = datasets.load(cfg.dataset, "eval", args.batch, device=args.device).batch(torch.arange(args.batch), args.device)
    _, _, elbo = stage_svi(1, cfg, model, guide, cfg.lr)
    step = plain_training_step(model, guide, x, 1.0, cfg.sigma[0], elbo)

    gpu = args.device != "cpu"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    for _ in range(3):  # warm-up: compilation, cuDNN's and cuFFT's plans
        step()
    sync()
    activities = [ProfilerActivity.CUDA] if gpu and not args.by_shape else [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities, record_shapes=args.by_shape) as prof:
        for _ in range(args.steps):
            step()
        sync()

    def self_time(e):  # microseconds over all profiled steps
        return e.self_device_time_total if gpu else e.self_cpu_time_total

    events = [e for e in prof.key_averages(group_by_input_shape=args.by_shape) if self_time(e) > 0]
    largest = sorted(events, key=self_time, reverse=True)[:args.top]
    n = args.steps
    print(f"{cfg.dataset}, batch {args.batch}, {args.variant}, {args.device}")
    if args.by_shape:
        for e in largest:
            print(f"{self_time(e) / n / 1e3:8.2f} ms {e.count // n:5d}x  {e.key[:40]:40s} {e.input_shapes}")
        return
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        total[kind(e.key)] += self_time(e)
        count[kind(e.key)] += e.count
    everything = sum(total.values())
    print(f"{everything / n / 1e3:.1f} ms a step in {sum(count.values()) // n} {'kernels' if gpu else 'operators'}\n")
    print("| kind | ms a step | share | count a step |\n|---|---|---|---|")
    for k, t in total.most_common():
        print(f"| {k} | {t / n / 1e3:.2f} | {100 * t / everything:.1f}% | {count[k] // n} |")
    print()
    for e in largest:
        print(f"{self_time(e) / n / 1e3:8.2f} ms {e.count // n:5d}x  [{kind(e.key)}] {e.key[:100]}")


if __name__ == "__main__":
    main()
