"""Writing files so that nothing is ever half-written or written over by mistake, and checking them."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .errors import InputError


def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path over path: readers see the old file or the new, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        open(tmp, "wb").close()  # a folder that cannot be written in fails here, as an OSError (torch.save's is not)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:  # an unwritable folder, a full disk: the file named, and the old one kept
        missing = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist)"
        raise InputError(f"cannot write {path}: {e.strerror or e}{missing}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def sha256(path):
    """The SHA-256 of a file, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# A run's and a cache's own files: no command's output may replace one of them.
OWN_FILES = ("checkpoint.pt", "compiled.bin", "config.json", "manifest.json", "log.csv", "quality.csv", ".lock")
KINDS = {  # what an existing file must be for an output of that kind to replace it
    "png": lambda p: p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n",
    "gif": lambda p: p.read_bytes()[:4] == b"GIF8",
    "md": lambda p: p.read_bytes()[:2] == b"# ",
    "json": lambda p: _json_object(p),
    "npz": lambda p: _predictions(p),
}


def check_output(path, kind, inputs=()):
    """Before any work: refuse an output path that names a file the command did not make for this
    purpose (one of its inputs, a run's or a cache's own file, or an existing file of another kind),
    or one whose folder cannot be made. kind: a key of KINDS. -> Path"""
    path = Path(path)
    same = [i for i in inputs if i is not None and Path(i).exists() and path.exists() and os.path.samefile(i, path)]
    if same:
        raise InputError(f"{path} is an input of this command: choose another output path")
    if path.name in OWN_FILES or (path.suffix == ".npz" and (path.parent / "manifest.json").exists()):
        raise InputError(f"{path} is a run's or a dataset cache's own file: choose another output path")
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name")
    if kind == "png" and path.suffix and path.suffix[1:].lower() not in figure_formats():
        raise InputError(f"{path}: a figure cannot be written as {path.suffix}; give a name ending in .png "
                         f"(or {', '.join('.' + f for f in sorted(figure_formats()) if f != 'png')})")
    if kind == "npz" and path.suffix.lower() != ".npz":  # np.load and `score` read it by its contents, people by its name
        raise InputError(f"{path}: the export is an .npz archive; give a name ending in .npz")
    if path.exists() and not KINDS[kind](path):
        raise InputError(f"{path} exists and is not a {kind} file this command writes: choose another output path "
                         "(or delete it)")
    ancestor = path.parent.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise InputError(f"cannot write {path}: {ancestor} is not a folder this process can write in")
    return path


def figure_formats():
    """The file types matplotlib can save a figure as ("png", "pdf", "svg", ...)."""
    from matplotlib.backend_bases import FigureCanvasBase
    return set(FigureCanvasBase.get_supported_filetypes())


def _json_object(path):
    try:
        return isinstance(json.loads(path.read_text()), (dict, list))
    except (ValueError, UnicodeDecodeError):
        return False


def _predictions(path):
    """Whether path is a PRED.npz: it has 'alpha', and no ground truth or images."""
    try:
        with np.load(path) as f:
            return "alpha" in f.files and not {"amodal", "images", "count"} & set(f.files)
    except Exception:
        return False
