"""Every notebook in examples/notebooks runs top to bottom, without Jupyter.

The code cells are executed in order in one fresh namespace, as a kernel would,
inside a temporary working directory, with matplotlib's Agg backend and two
threads. `display` is given to them as the IPython kernel gives it. A cell that
raises fails the test with the cell's number and its own lines in the traceback.
"""
import json
import linecache
from pathlib import Path

import matplotlib
import pyro
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "examples" / "notebooks").glob("*.ipynb"))


class CellError(Exception):
    pass


def code_cells(path):
    """(number, source) of each code cell; numbers count every cell from 1, as a reader does."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for number, cell in enumerate(nb["cells"], 1):
        if cell["cell_type"] == "code":
            source = cell["source"]
            yield number, "".join(source) if isinstance(source, list) else source


def display(*objects, **kwargs):
    """The kernel's display(); here figures are only closed."""
    for obj in objects:
        if isinstance(obj, matplotlib.figure.Figure):
            plt.close(obj)


def run_notebook(path):
    namespace = {"__name__": "__main__", "display": display}
    for number, source in code_cells(path):
        filename = f"<{path.name} cell {number}>"
        # Let tracebacks quote the cell's lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except Exception as e:
            first = source.strip().splitlines()[0] if source.strip() else ""
            raise CellError(f"{path.name}: cell {number} raised {type(e).__name__}: {e}\n"
                            f"    the cell begins: {first}") from e
        finally:
            plt.close("all")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a notebook writes lands here
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    torch.set_num_threads(2)
    try:
        run_notebook(path)
    finally:
        torch.set_num_threads(threads)
        torch.set_grad_enabled(grad)
        pyro.clear_param_store()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_clean(path):
    """Notebooks are kept as nbformat 4 with no outputs: diffs show only what was written."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    for number, cell in enumerate(nb["cells"], 1):
        assert cell["cell_type"] in ("markdown", "code", "raw"), f"cell {number}"
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{path.name}: cell {number} has outputs; clear them before committing"
