"""What training writes besides its checkpoint: log.csv and TensorBoard every few steps,
quality.csv (held-out scores against minutes trained) and figures of the model as it learns."""
import csv
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from .decompose import decompose
from .evaluate import decomposition_scores
from .interventions import sample
from .metrics import SCORES
from .report import PAPER
from .viz import decomposition_figure, quality_figure, samples_figure

STAGE_2_TERMS = ("nll_theta", "nll_z", "nll_d", "kl_y")
FIGURES_EVERY_S = 60  # epoch figures at most once a minute of training: each takes about a second to draw


class Log:
    """RUN/log.csv, and TensorBoard events in RUN/tb."""

    def __init__(self, run_dir, resume):
        self.path = Path(run_dir) / "log.csv"
        self.file = open(self.path, "a" if resume else "w", newline="")
        self.writer, self.fields = None, None
        self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
        self.drawn = None  # the training seconds at which this call last drew the epoch figures

    def step(self, at, loss, terms, temperature, sigma, images_per_s):
        self.write({"step": at["step"], "epoch": at["epoch"], "stage": at["stage"], "loss": loss,
                    **{k: float(v) for k, v in terms.items()}, "temperature": temperature, "sigma": sigma,
                    "lr": at["lr"], "images_per_s": images_per_s}, later=STAGE_2_TERMS)

    def write(self, row, later=()):
        """One row {"step", "epoch", name: number}: log.csv's columns are the first row's, then `later` ones
        (stage 2's terms) that it leaves blank; TensorBoard gets every number but the step and epoch."""
        if self.writer is None:
            if self.file.tell() > 0:  # resumed: keep the columns already there
                with open(self.path, newline="") as f:
                    self.fields = next(csv.reader(f))
            else:
                self.fields = list(row) + [t for t in later if t not in row]
            self.writer = csv.DictWriter(self.file, self.fields, extrasaction="ignore")
            if self.file.tell() == 0:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()
        for k, v in row.items():
            if k not in ("step", "epoch"):
                self.tb.add_scalar(k, v, row["step"])

    def scalar(self, tag, value, step):
        self.tb.add_scalar(tag, value, step)

    def figures_due(self, seconds, last=False):
        """Whether the epoch that ends at `seconds` of training draws its figures: the call's first epoch and
        its last, and between them one at least FIGURES_EVERY_S after the one before. Drawing (about a second)
        is a tenth of a short epoch on a GPU, and the run's minutes count it."""
        due = last or self.drawn is None or seconds - self.drawn >= FIGURES_EVERY_S
        if due:
            self.drawn = seconds
        return due

    def figure(self, tag, fig, epoch):
        if fig is not None:
            self.tb.add_figure(tag, fig, epoch)

    def close(self):
        self.file.close()
        self.tb.close()


def score_quality(run_dir, model, guide, eval_data, device, at, seconds, log):
    """Append the decomposition scores of eval_data to RUN/quality.csv and redraw figures/quality.png.
    guide None: a peer model (pyro_objects.baselines), whose aIOU and DPA stay blank."""
    nets = [net for net in (model, guide) if net is not None]
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    scores, _ = decomposition_scores(model, guide, eval_data, device=device)
    for net, mode in zip(nets, modes):
        net.train(mode)
    row = {"step": at["step"], "epoch": at["epoch"], "minutes": seconds / 60,
           **{k: "" if scores.get(k) is None else scores[k] for k in SCORES}}
    path = Path(run_dir) / "quality.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    for k in SCORES:
        if row[k] != "":
            log.scalar(f"quality/{k}", row[k], at["step"])
    log.scalar("quality/speck_slots", len(scores["slots"]["specks"]), at["step"])  # label-free: slots drawing specks
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    quality_figure(rows, PAPER.get(eval_data.name, {}), Path(run_dir) / "figures" / "quality.png")


def epoch_figures(run_dir, model, guide, data, device, epoch, log, scene_prior=False):
    """figures/decomposition.png of the first 8 training images; with the scene prior, figures/samples.png.
    guide None: a peer model (pyro_objects.baselines), its masks in slot order."""
    nets = [net for net in (model, guide) if net is not None]
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()  # batch norm by its running statistics, which drawing must not change
    x = data.batch(torch.arange(min(8, len(data))), device)
    fig = decomposition_figure(x, decompose(model, guide, x), Path(run_dir) / "figures" / "decomposition.png")
    log.figure("decomposition", fig, epoch)
    if scene_prior:  # scenes from the hyperprior, as `pyro-objects sample` draws them
        fig = samples_figure(sample(model, 8, hyperprior=True)[0], Path(run_dir) / "figures" / "samples.png")
        log.figure("samples", fig, epoch)
    for net, mode in zip(nets, modes):
        net.train(mode)
