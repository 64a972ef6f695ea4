"""evaluate and score: the paper's numbers for a run, and for predictions of any model."""
import json

import click

from .. import metrics
from ..evaluate import evaluate
from ..files import atomic_write, check_output
from ..report import fmt, markdown
from ..score import score_files
from . import main
from .common import Finite, pick_device


@main.command("evaluate")
@click.argument("run_dir", type=click.Path())
@click.option("--split", type=click.Choice(["train", "eval"]), default="eval", show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=10_000, show_default=True, help="Held-out images to evaluate.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Results file (default: RUN_DIR/results.json); the tables go beside it as .md.")
@click.option("--fid/--no-fid", default=True, show_default=True, help="Also FID and KID of generated images.")
@click.option("--fid-n", type=click.IntRange(min=2), help="Images per set for FID and KID (default: --n).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--data", "cache", type=click.Path(file_okay=False),
              help="Score on this dataset cache's split instead (`pyro-objects data make`; e.g. Blender-rendered CLEVR).")
@click.option("--device")
def evaluate_command(run_dir, split, n, json_path, fid, fid_n, batch_size, cache, device):
    """mIOU, aIOU, DPA, FG-ARI, MSE, FID and KID of a trained run (RUN_DIR, or pretrained:NAME), beside
    the paper's numbers."""
    results, paths = evaluate(run_dir, split, n, batch_size, pick_device(device), fid, fid_n, json_path, cache=cache)
    click.echo(markdown(results))
    click.echo(" ".join(f"{kind}: {path}" for kind, path in paths.items()))


@main.command("score")
@click.argument("truth_path", metavar="GT.npz", type=click.Path(dir_okay=False))
@click.argument("pred_path", metavar="PRED.npz", type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
@click.option("--threshold", type=Finite(0, 1), default=metrics.THRESHOLD, show_default=True,
              help="A slot covers a pixel where its alpha exceeds this.")
@click.option("--min-overlap", type=click.IntRange(min=0), default=metrics.MIN_OVERLAP, show_default=True,
              help="DPA scores pairs whose amodal masks share at least this many pixels.")
@click.option("--allow-out-of-range", is_flag=True,
              help="Score alpha and recon values outside [0, 1] as they are, instead of refusing them.")
def score_command(truth_path, pred_path, json_path, threshold, min_overlap, allow_out_of_range):
    """Decomposition metrics of any model's predictions from files alone.

    GT.npz: amodal bool [N, K, H, W] (objects back to front, index 0 farthest), count int [N],
    optionally images uint8 [N, H, W, 3]. PRED.npz: alpha float [N, J, H, W] (each slot's amodal
    alpha), optionally depth float [N, J] (larger is farther; without it aIOU and DPA are not
    scored) and recon float [N, H, W, 3] in [0, 1].
    """
    json_path = check_output(json_path, "json", inputs=[truth_path, pred_path]) if json_path else None
    scores = score_files(truth_path, pred_path, threshold, min_overlap, allow_out_of_range)
    for name in metrics.SCORES:
        if name in scores.get("not_applicable", {}):
            click.echo(f"{name:7s}n/a     ({scores['not_applicable'][name]})")
        elif name in scores:
            support = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in scores["support"][name].items())
            click.echo(f"{name:7s}{fmt(scores[name], '{:.4f}' if name != 'MSE' else '{:.3e}')}  ({support})")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(json_path, lambda p: p.write_text(json.dumps(scores, indent=2) + "\n"))
