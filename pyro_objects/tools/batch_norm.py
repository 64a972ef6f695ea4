"""Whether batch norm's statistics can swing a trained run's checks. The weights stay as the
checkpoint holds them; RUN's held-out decomposition is scored eight ways:

    python -m pyro_objects.tools.batch_norm RUN --data DIR --n 500 --batches 30

    running statistics       eval mode, as every check, `evaluate` and `decompose` score: the
                             checkpoint's own running means and variances
    batch statistics         train mode, each batch of 100 normalised by its own statistics
                             (on copies of the networks, so the running statistics stay)
    batch statistics,        the same, with train mode in the object encoder alone (in our configs
      encoder only           the guide's only batch norm): whether the gap is the encoder's or the decoder's
    re-estimated             eval mode again after each of --batches train-mode passes of the ELBO
                             over other images, which move the running statistics as training does
                             (momentum 0.1) while the weights stay: median and range over the passes
    recalibrated             eval mode, every batch norm's statistics replaced by their plain average
                             over --batches train-mode decompositions of other images: the inputs a
                             decomposition feeds the networks (θ's one-hot mode, z's mean), where
                             training feeds them samples
    the guide's calibrated   what `ours` does before each checkpoint and check of stage 1
                             (train.calibrate): the guide's statistics alone replaced by their average
                             over --batches decompositions of other images
    relaxed θ to the         running statistics, but the object encoder is fed a relaxed θ sample at
      encoder                the checkpoint's temperature, as in training (objects still placed at the
                             argmax; one seeded draw)
    θ's softmax at τ to      the same with the noise-free relaxation, softmax(logits / τ): deterministic
      the encoder

If the checks of a run swing while its training loss does not, and the batch statistics hold
where the running ones fall, the running statistics are the cause; if re-estimating them from the
same weights moves the scores little, their batch-to-batch noise is not.

DIR: a cache of held-out images (`pyro-objects data make DATASET --n 0 --n-eval N --out DIR`); its
first --n images are scored, the next --batches batches re-estimate. Without it they are generated.
"""
import argparse
import copy
import statistics
import types

import pyro
import pyro.distributions as dist
import torch
from torch.optim.swa_utils import update_bn

from .. import data as datasets
from ..decompose import decompose
from ..elbo import from_config
from ..errors import InputError
from ..evaluate import decomposition_scores
from ..runs import load_run
from ..train import calibrate

METRICS = ("mIOU", "FG-ARI", "MSE")


def scores(run, held_out, n=500, batches=30, device="cpu"):
    """{way: [{metric: value}, ...]}: one row for the running and the batch statistics, one a pass
    for the re-estimated ones. run: load_run()'s (cfg, model, guide, state), whose model and guide
    the passes change; held_out: a Dataset of at least n + batches batches of images."""
    cfg, model, guide, state = run
    if len(held_out) < n + batches * cfg.batch_size:
        raise InputError(f"{len(held_out)} held-out images are fewer than --n {n} and --batches {batches} of "
                         f"{cfg.batch_size} need")
    scored = datasets.Dataset(held_out.name, held_out.images[:n],
                              *(t if t is None else t[:n] for t in (held_out.amodal, held_out.count)))
    pool = held_out.images[n:]

    def row(m, g):
        with torch.no_grad():
            s, _ = decomposition_scores(m, g, scored, device=device)
        return {k: s[k] for k in METRICS}

    out = {"running statistics": [row(model, guide)],
           "batch statistics": [row(copy.deepcopy(model).train(), copy.deepcopy(guide).train())],
           "batch statistics, encoder only": [row(model, _encoder_in_train_mode(copy.deepcopy(guide)))],
           "recalibrated": [row(*recalibrated(model, guide, pool, batches, cfg.batch_size, device))] if batches else [],
           "the guide's calibrated":
               [row(model, calibrated_guide(guide, pool, cfg.batch_size, device))] if batches else [],
           "re-estimated": []}
    temperature, sigma = state["temperature"], state["sigma"]  # where training stood (shipped models keep both)
    torch.manual_seed(0)
    out["relaxed θ to the encoder"] = [row(model, encoder_fed(guide, "relaxed", temperature))]
    out["θ's softmax at τ to the encoder"] = [row(model, encoder_fed(guide, "softmax", temperature))]
    elbo = from_config(cfg)
    torch.manual_seed(0)
    for k in range(batches):
        x = datasets.to_float(pool[k * cfg.batch_size:(k + 1) * cfg.batch_size].to(device))
        model.train()
        guide.train()
        with torch.no_grad(), pyro.validation_enabled(False):
            elbo.differentiable_loss(model, guide, x, temperature=temperature, sigma=sigma)
        model.eval()
        guide.eval()
        out["re-estimated"].append(row(model, guide))
    return out


def _encoder_in_train_mode(guide):
    guide.encode_object.train()
    return guide


def encoder_fed(guide, theta_input, temperature):
    """A copy of guide whose modes() give the object encoder, in place of θ's one-hot mode, a relaxed
    θ sample at `temperature` ("relaxed") or its noise-free form softmax(logits / temperature)
    ("softmax"); the objects stay at the argmax."""
    def modes(self, x):
        logits = self.theta_logits(x)
        theta = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(x.dtype)
        t = torch.tensor(float(temperature), device=x.device)
        fed = (dist.RelaxedOneHotCategorical(t, logits=logits, validate_args=False).rsample()
               if theta_input == "relaxed" else torch.softmax(logits / t, -1))
        q_z, q_d = self.q_z_d(x, fed)
        return {"theta": theta, "z": q_z.mean, "d": torch.sigmoid(q_d.base_dist.loc), "z_bg": self.q_z_bg(x).mean}
    guide = copy.deepcopy(guide)
    guide.modes = types.MethodType(torch.no_grad()(modes), guide)
    return guide


def calibrated_guide(guide, images, batch_size, device="cpu"):
    """A copy of guide after train.calibrate on all of images (uint8 [M, H, W, 3]), in eval mode."""
    guide = copy.deepcopy(guide).eval()
    calibrate(guide, datasets.Dataset("pool", images), batch_size, -(-len(images) // batch_size), device)
    return guide


def recalibrated(model, guide, images, batches, batch_size, device="cpu"):
    """Copies of model and guide whose batch norms hold the plain average of their statistics over
    `batches` train-mode decompositions of images (uint8 [M, H, W, 3]) -> (model, guide), in eval mode."""
    both = _Decomposing(copy.deepcopy(model), copy.deepcopy(guide))
    update_bn((datasets.to_float(images[k * batch_size:(k + 1) * batch_size].to(device)) for k in range(batches)), both)
    return both.model.eval(), both.guide.eval()


class _Decomposing(torch.nn.Module):
    """A decomposition by model and guide, for torch's update_bn (which averages every batch norm of both)."""

    def __init__(self, model, guide):
        super().__init__()
        self.model, self.guide = model, guide

    def forward(self, x):
        return decompose(self.model, self.guide, x)


def table(run_dir, data=None, n=500, batches=30, device="cpu"):
    run = load_run(run_dir, device)
    cfg = run[0]
    held_out = datasets.load(cfg.dataset, "eval", n + batches * cfg.batch_size, device=device, cfg=cfg, cache=data)
    rows = scores(run, held_out, n, batches, device)
    lines = [f"{run_dir}: {n} held-out images, the checkpoint's weights", "",
             "| batch norm | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for way, values in rows.items():
        if not values:
            continue
        label = {"re-estimated": f"re-estimated, after each of {len(values)} passes",
                 "recalibrated": f"recalibrated on {batches} batches of decompositions"}.get(way, way)
        cells = []
        for k in METRICS:
            v = [r[k] for r in values]
            fmt = (lambda a: f"{a:.2e}") if k == "MSE" else (lambda a: f"{a:.3f}")
            cells.append(fmt(v[0]) if len(v) == 1 else f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--data", help="a cache of held-out images (default: generated)")
    parser.add_argument("--n", type=int, default=500, help="held-out images scored")
    parser.add_argument("--batches", type=int, default=30, help="train-mode passes that re-estimate the statistics")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.n < 1 or args.batches < 0:
        parser.error("--n must be at least 1 and --batches at least 0")
    try:
        print(table(args.run_dir, args.data, args.n, args.batches, args.device))
    except InputError as e:
        parser.exit(1, f"batch_norm.py: {e}\n")


if __name__ == "__main__":
    main()
