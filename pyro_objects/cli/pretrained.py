"""export and info: a trained run reduced to a shippable file, and what a model file records."""
import json

import click

from .. import pretrained, runs
from ..export import export
from ..metrics import DECOMPOSITION
from ..report import fmt
from ..train import Clock
from . import main
from .common import Finite, pick_device


def scores_text(scores):
    """'mIOU 0.6400  aIOU 0.6474 ... MSE 1.21e-03' of a {metric: value} dict."""
    return "  ".join(f"{k} {fmt(v, '{:.4f}' if k != 'MSE' else '{:.2e}')}" for k, v in scores.items())


@main.command("export")
@click.argument("run_dir", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--n", type=click.IntRange(min=8), default=1000, show_default=True,
              help="Held-out images to score the run and its float16 copy on.")
@click.option("--max-drop", type=Finite(min=0), default=0.005, show_default=True,
              help="Refuse the export if float16 weights lose more than this on a decomposition metric.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--device")
def export_command(run_dir, out, n, max_drop, batch_size, device):
    """Reduce a trained run to OUT.pt (float16 weights, no optimiser state; OUT.sha256 beside it),
    recording its commands, commit, generator version and held-out scores. Read it back as
    pretrained:OUT.pt, or ship it in pyro_objects/pretrained/ as pretrained:NAME."""
    about = export(run_dir, out, n, batch_size, pick_device(device), max_drop)
    scores = about["scores"]
    for kind in ("float32", "float16"):
        click.echo(f"{kind}: {scores_text(scores[kind])}  ({scores['images']} images)")
    click.echo(f"{run_dir} -> {out}")


@main.command("info")
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def info_command(model, as_json):
    """What a model records: the commands that trained it, the commit, the dataset generator's version
    and its held-out scores; of a run directory, the minutes trained and where they went up to its
    checkpoint: in the steps (of them, each call's first steps, which compile and capture), writing
    checkpoints and drawing figures; the rest went between them (data, batches, starting each call).
    Checks of held-out images (--eval-every) are outside the minutes, their own time given. MODEL:
    pretrained:NAME, pretrained:PATH.pt or a run directory; without MODEL, the pretrained models
    shipped with the package."""
    if model is None:
        for name in pretrained.names():
            a = pretrained.about(name)
            s = a["scores"]["float16"]
            click.echo(f"pretrained:{name:15s} {a['dataset']:15s} " +
                       "  ".join(f"{k} {fmt(s[k], '{:.3f}')}" for k in DECOMPOSITION if k in s))
        return
    if pretrained.is_pretrained(model):
        record = pretrained.about(model)
    else:
        state = runs.load_checkpoint(model)
        record = {"dataset": state["config"]["dataset"], "commands": runs.commands(model), "epoch": state["epoch"],
                  "step": state["step"], "minutes": _minutes(state.get("seconds", 0)),
                  "minutes_in_steps": _minutes(state.get("step_seconds")),
                  **{f"minutes_in_{part}": _minutes((state.get("time_parts") or {}).get(part)) for part in Clock.PARTS},
                  "scene_prior": runs.has_scene_prior(state),
                  "weights": _weights(state),
                  "config": state["config"]}
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    for key, value in record.items():
        if key == "config":
            continue
        if key == "commands":
            click.echo("commands:" + "".join(f"\n  {c}" for c in value) if value else "commands: (not recorded)")
        elif key == "scores":
            click.echo(f"scores on {value['images']} held-out images (split {value['split']}, seed {value['seed']}):")
            for kind in ("float32", "float16"):
                click.echo(f"  {kind}: {scores_text(value[kind])}")
        else:
            click.echo(f"{key}: {'(not recorded)' if value is None else value}")


def _minutes(seconds):
    return None if seconds is None else round(seconds / 60, 2)


def _weights(state):
    """Which weights a run's saved model holds (what load_run reads; train.WeightAverage)."""
    if "average" in state:
        return "stage 1's moving average"
    if state["config"].get("weight_average") and state.get("stage", 1) == 2:
        return "stage 1's moving average, then stage 2's scene prior"
    return "as trained"
