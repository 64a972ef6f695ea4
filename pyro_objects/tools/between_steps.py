"""What a training run does between its steps, timed apart from them: each step's batch, and each
epoch's figures and checkpoint, on an untrained model of each dataset's config.

    python -m pyro_objects.tools.between_steps polygons clevr5 --repeats 5
    python -m pyro_objects.tools.between_steps polygons --variant bf16+compile+channels_last+graphs

    batch, from the host     Dataset.batch of a training batch whose images are on the host: gathered
                             there and copied to the device (CLEVR's generator and dataset caches)
    batch, on the device     the same with the images on the device (data.resident, as training does
                             where they fit)
    figures                  monitor.epoch_figures: decomposition.png of 8 images and its TensorBoard copy
    checkpoint               runs.save_checkpoint of the networks and Adam's state, as training writes it

The batches are drawn from random uint8 images as many and as large as the config's training set
(what a gather costs depends on the sizes, not the pixels). Each cell is the median over repeats
after one warm-up, with the range. Training takes a batch every step, draws the figures at most once
a minute (monitor.FIGURES_EVERY_S) and writes the checkpoint at most once a minute too (train.CHECKPOINT_EVERY_S).

A second table times blocks of --loop-steps stage-1 steps (train.Stage, the default Speed, or
--variant's) with the images on the device, in ms a step, three ways:

    read each step           as train.py takes them: the batch by the epoch's order (a host tensor),
                             the step's seed, the step, its loss read to check that it is finite
    read once a block        the order on the device and the loss left unread until the block ends,
                             so that the host queues the next step while the GPU runs this one
    the step alone           one batch, stepped again and again, read once a block: the floor

On a GPU the steps are CUDA graphs; on a CPU they are eager SVI.step, which reads its loss itself,
so only the first row is timed there.
"""
import argparse
import itertools
import math
import statistics
import tempfile

import pyro
import torch

from .. import data as datasets
from .. import fast, schedules
from ..config import Speed, config_for
from ..errors import InputError
from ..guide import Guide
from ..model import Model
from ..monitor import Log, epoch_figures
from ..runs import save_checkpoint
from ..train import Stage
from .bench import device_name, seconds, variant


def _random_images(cfg, n_train=None):
    """uint8 [n, N, N, 3] of noise, as many (n_train; default: the config's) and as large as cfg's training set."""
    return torch.randint(0, 256, (n_train or cfg.n_train, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def times(dataset, device, repeats=5, n_train=None):
    """{kind: [s, ...]} over repeats, after one warm-up of each: the four kinds above. On a CPU there is
    no copy, so the two batch kinds are one ("batch, on the device" is left out). n_train: the training
    set's size (default: the config's)."""
    cfg = config_for(dataset)
    host = datasets.Dataset(dataset, _random_images(cfg, n_train))
    on_device = datasets.resident(host, device, free_bytes=float("inf"))
    order = torch.randperm(len(host), generator=torch.Generator().manual_seed(0))
    batches = itertools.cycle(order.split(cfg.batch_size))
    model, guide = Model(cfg).to(device), Guide(cfg).to(device)
    params = [*model.parameters(), *guide.parameters()]
    adam = torch.optim.Adam(params, lr=0.0)
    for p in params:
        p.grad = torch.zeros_like(p)
    adam.step()  # Adam's state, as large as a trained run's
    data = datasets.load(dataset, "eval", 8, device=device)
    out = {}
    with tempfile.TemporaryDirectory() as run_dir:
        log = Log(run_dir, resume=False)
        work = {"batch, from the host": lambda: host.batch(next(batches), device),
                "batch, on the device": lambda: on_device.batch(next(batches), device),
                "figures": lambda: epoch_figures(run_dir, model, guide, data, device, 0, log),
                "checkpoint": lambda: save_checkpoint(run_dir, {"model": model.state_dict(), "guide": guide.state_dict(),
                                                                "optim": adam.state_dict()})}
        if on_device is host:
            del work["batch, on the device"]
        for name, job in work.items():
            job()  # the warm-up
            out[name] = [seconds(job, device) for _ in range(repeats)]
        log.close()
    return out


def loop_times(dataset, device, steps=100, repeats=5, n_train=None, speed=Speed()):
    """{way: [s a step, ...]} over repeats blocks of steps stage-1 steps of `speed` (default: training's
    default), after one warm-up block of each: the ways of the module's second table. The learning rate
    is 0, so every step does the same work on the same networks."""
    cfg = config_for(dataset)
    pyro.clear_param_store()  # the networks of a dataset timed before are not these
    data = datasets.resident(datasets.Dataset(dataset, _random_images(cfg, n_train)), device, free_bytes=float("inf"))
    torch.manual_seed(0)
    model, guide = fast.accelerate(Model(cfg).to(device), Guide(cfg).to(device), speed, device)
    stage = Stage(1, cfg, model, guide, 0.0, device, speed)
    t, s = schedules.temperature(cfg, 0), schedules.sigma(cfg, 0)
    on_host = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    on_device = on_host.to(device)
    unread = getattr(stage.step_1, "unread", None)  # a CUDA graph's step

    def batch(order, i):
        start = i % (len(data) // cfg.batch_size) * cfg.batch_size
        return data.batch(order[start:start + cfg.batch_size], device)

    def read_each(i):
        torch.manual_seed(i)
        math.isfinite(stage.step(batch(on_host, i), t, s))

    def read_once(i):
        torch.manual_seed(i)
        return unread(batch(on_device, i), t, s)

    x = batch(on_host, 0)
    ways = {"read each step": read_each}
    if unread is not None:
        ways.update({"read once a block": read_once, "the step alone": lambda i: unread(x, t, s)})
    out = {}
    for name, way in ways.items():
        def block():
            for i in range(steps):
                loss = way(i)
            if loss is not None:
                math.isfinite(float(loss))
        block()  # the warm-up (the first of all also records the CUDA graph)
        out[name] = [seconds(block, device) / steps for _ in range(repeats)]
    return out


LOOP_WAYS = ("read each step", "read once a block", "the step alone")


def loop_table(names, device, steps=100, repeats=5, n_train=None, speed_name="fp32+graphs"):
    lines = [f"{device_name(device)}, {speed_name}, blocks of {steps} stage-1 steps, {repeats} blocks after one "
             "warm-up, ms a step: median (range)", "",
             "| dataset | batch | " + " | ".join(LOOP_WAYS) + " |", "|---|---|" + "---|" * len(LOOP_WAYS)]
    for name in names:
        cfg, t = config_for(name), loop_times(name, device, steps, repeats, n_train, variant(speed_name))
        cells = [f"{statistics.median(t[k]) * 1e3:.2f} ({min(t[k]) * 1e3:.2f}-{max(t[k]) * 1e3:.2f})" if k in t else "—"
                 for k in LOOP_WAYS]
        lines.append(f"| {name} | {cfg.batch_size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


KINDS = {"batch, from the host": 1e3, "batch, on the device": 1e3, "figures": 1, "checkpoint": 1}  # unit: ms, s


def table(names, device, repeats=5, n_train=None):
    lines = [f"{device_name(device)}, {repeats} repeats after one warm-up", "",
             "| dataset | images (batch) | " + " | ".join(f"{k}, {'ms' if u > 1 else 's'}: median (range)"
                                                      for k, u in KINDS.items()) + " |",
             "|---|---|" + "---|" * len(KINDS)]
    for name in names:
        cfg, t = config_for(name), times(name, device, repeats, n_train)
        cells = [f"{statistics.median(t[k]) * u:.3f} ({min(t[k]) * u:.3f}-{max(t[k]) * u:.3f})" if k in t else "—"
                 for k, u in KINDS.items()]
        lines.append(f"| {name} | {n_train or cfg.n_train:,} × {cfg.image_size}² ({cfg.batch_size}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", default=["polygons"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-train", type=int, help="training images to draw batches from (default: the config's)")
    parser.add_argument("--loop-steps", type=int, default=100, help="stage-1 steps a block of the second table (0: leave it out)")
    parser.add_argument("--variant", default="fp32+graphs",
                        help="the second table's steps, as `bench --variants` (default: training's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.repeats < 1 or (args.n_train is not None and args.n_train < 1) or args.loop_steps < 0:
        parser.error("--repeats and --n-train must be at least 1, --loop-steps at least 0")
    try:
        for name in args.datasets:
            config_for(name)
        variant(args.variant)
    except InputError as e:  # an unknown dataset: the config's own line
        parser.exit(1, f"between_steps.py: {e}\n")
    print(table(args.datasets, args.device, args.repeats, args.n_train))
    if args.loop_steps:
        print()
        print(loop_table(args.datasets, args.device, args.loop_steps, args.repeats, args.n_train, args.variant))


if __name__ == "__main__":
    main()
