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
