"""The report of an evaluation: the paper's numbers beside ours, as results.json and
results.md laid out like the paper's Tables 3, 4 and 1, with the DPA curve (Fig. 6)."""
import json
import math
from pathlib import Path

from .files import atomic_write
from .viz import dpa_figure

# The paper's numbers (Anciukevičius et al. 2020), to print beside ours: Table 3 (mIOU,
# aIOU, DPA), Table 4 (reconstruction MSE) and Table 1 (full-scene FID).
PAPER = {
    "polygons": {"mIOU": 0.83, "aIOU": 0.90, "DPA": 0.87, "FID": 75.9},
    "clevr3": {"mIOU": 0.84, "aIOU": 0.85, "DPA": 0.92, "MSE": 6.0e-4, "FID": 49.6},
    "clevr5": {"mIOU": 0.78, "aIOU": 0.79, "DPA": 0.74, "MSE": 8.1e-4},
    "clevr5-vbg": {"mIOU": 0.64, "aIOU": 0.65, "DPA": 0.70, "MSE": 7.4e-4, "FID": 83.1},
    "multi-dsprites": {"FID": 66.7},
}


def write_results(results, json_path):
    """results.json, the Markdown tables beside it (.md), and the DPA curve (-dpa.png) if there is one."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": json_path, "markdown": json_path.with_suffix(".md")}
    atomic_write(paths["json"], lambda p: p.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n"))
    atomic_write(paths["markdown"], lambda p: p.write_text(markdown(results)))
    if results.get("dpa_curve"):
        paths["dpa_curve"] = json_path.with_name(json_path.stem + "-dpa.png")
        dpa_figure(results["dpa_curve"], paths["dpa_curve"], results["dataset"])
    return paths


def fmt(value, style="{:.3f}"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return style.format(value)


def _table(title, columns, results, styles):
    """One paper-style table: a row of ours (or of a baseline, named) and a row of the paper's numbers;
    "n/a" where a metric does not apply to the model."""
    ours, paper, not_applicable = results["metrics"], results["paper"], results.get("not_applicable", {})
    head = f"| {results['dataset']} | " + " | ".join(label for label, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    row_ours = f"| {results.get('baseline', 'ours')} | " + " | ".join(
        "n/a" if k in not_applicable else fmt(ours.get(k), styles.get(k, "{:.3f}")) for _, k in columns) + " |"
    row_paper = "| paper | " + " | ".join(fmt(paper.get(k), styles.get(k, "{:.3f}")) for _, k in columns) + " |"
    return f"{title}\n\n{head}\n{rule}\n{row_ours}\n{row_paper}\n"


def markdown(results):
    """The paper's Tables 3, 4 and 1 with our numbers beside theirs, then what was skipped."""
    styles = {"MSE": "{:.2e}", "FID": "{:.1f}", "FID objects": "{:.1f}", "KIDx100": "{:.2f}",
              "KIDx100 objects": "{:.2f}", "mIOU": "{:.2f}", "aIOU": "{:.2f}", "DPA": "{:.2f}", "FG-ARI": "{:.2f}"}
    model = f" of the {results['baseline']} baseline" if results.get("baseline") else ""
    drawn = f", drawn by the {results['renderer']} renderer" \
        if results.get("renderer") and results["dataset"].startswith("clevr") else ""  # polygons, dSprites: one generator
    parts = [f"# {results['dataset']}{model}: {results['images']} {results['split']} images{drawn}\n",
             _table("Decomposition (Table 3, Sec. 5.2; FG-ARI as the peers report it)",
                    [("mIOU", "mIOU"), ("aIOU", "aIOU"), ("DPA", "DPA"), ("FG-ARI", "FG-ARI")], results, styles),
             _table("Reconstruction (Table 4)", [("MSE", "MSE")], results, styles),
             *([slots_markdown(results["slots"])] if results.get("slots") else []),
             _table("Generation (Table 1, Sec. 5.1)",
                    [("FID scenes", "FID"), ("KID×100 scenes", "KIDx100"),
                     ("FID objects", "FID objects"), ("KID×100 objects", "KIDx100 objects")], results, styles)]
    if results.get("not_applicable"):
        parts.append("Not applicable (n/a):\n\n" + "".join(f"- {k}: {v}\n" for k, v in results["not_applicable"].items()))
    if results["skipped"]:
        parts.append("Skipped:\n\n" + "".join(f"- {k}: {v}\n" for k, v in results["skipped"].items()))
    parts.append("Paper: Anciukevičius et al. (2020), Tables 1, 3 and 4; — where it gives no number.\n")
    return "\n".join(parts)


def slots_markdown(slots):
    """The label-free slot check as a line, and a warning where a slot draws specks."""
    q90 = slots["pixels_q90"]
    text = "Slots: pixels covered, 90th percentile over the images: " + \
        ", ".join(f"slot {j} {q:.0f}" for j, q in enumerate(q90)) + "\n"
    against = slots.get("against", max(q90))  # results written before "against" was kept: the largest slot
    for j in slots["specks"]:
        text += (f"\nWarning: slot {j} draws only specks ({q90[j]:.0f} px against {against:.0f}): one slot is likely "
                 "drawing several objects. If a later checkpoint still shows this, train again with another --seed "
                 "(docs/RESULTS.md, How often a run does not decompose).\n")
    return text
