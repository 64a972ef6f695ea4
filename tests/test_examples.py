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


def test_compare_by_visibility_bins_every_object_and_its_last_row_is_the_runs_miou(tiny_cfg, train_tiny, tmp_path):
    import importlib.util

    from pyro_objects.data import Dataset, polygons
    from pyro_objects.evaluate import decomposition_scores, load_any

    spec = importlib.util.spec_from_file_location("compare_by_visibility", EXAMPLES / "compare_by_visibility.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    train_tiny(tiny_cfg, tmp_path / "run", max_steps=4)
    d = polygons.generate(16, seed=1, image_size=tiny_cfg.image_size)
    data = Dataset("polygons", d["images"], d["amodal"], d["count"])
    _, model, guide, _ = load_any(tmp_path / "run")
    a = compare.per_object(model, guide, data, batch_size=8)
    rows = compare.table(a, a).splitlines()
    scores, _ = decomposition_scores(model, guide, data, batch_size=8)
    cells = {row.split(" | ")[0].strip("| "): row.strip("| ").split(" | ")[1:] for row in rows[2:6]}
    assert cells["all"][1] == cells["all"][2] == f"{scores['mIOU']:.3f}"  # a run against itself: one mIOU, twice
    assert sum(int(cells[label][0]) for _, _, label in compare.BINS) == int(cells["all"][0]) > 0
    assert ((a["shown"] >= 0) & (a["shown"] <= 1)).all()
