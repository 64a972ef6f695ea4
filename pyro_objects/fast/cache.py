"""What torch.compile built for a run, kept in the run directory: RUN/compiled.bin.

A compiled run spends its first half-minute to minute compiling. torch keeps what it compiled in
a cache on the machine's disk, which a fresh machine, a cluster job's new node or a cleaned
temporary folder does not have (docs/PERFORMANCE.md, Between the steps, measures both). Training
saves torch's cache artifacts (the graphs and kernels this process compiled or found in its cache;
torch >= 2.7) beside the checkpoint, and a resumed run loads them before its first step, so that
it compiles from the cache wherever it runs. The file is only a cache: one that does not load, or
was built for another torch or device, costs a warning or a recompile, never the run.
"""
import logging
import warnings
from pathlib import Path

import torch

from ..errors import InputError
from ..files import atomic_write

FILE = "compiled.bin"
_kept = {}  # compiled.bin's path -> what the compiler had done (`_compiled`) when the file last matched it


def _compiled():
    """A snapshot of torch's compiler counters (frames traced, graphs compiled, cache hits and misses),
    which change only when something is compiled or looked up: steps that replay what is built leave it."""
    from torch._dynamo.utils import counters
    return tuple(sorted((kind, tuple(sorted(counts.items()))) for kind, counts in counters.items()))


def _supported(speed):
    return speed.compile and hasattr(torch.compiler, "save_cache_artifacts")


def load(run_dir, speed):
    """Before the first step of a compiled run: load RUN/compiled.bin into torch's compiler cache, if
    there is one. -> whether it loaded."""
    path = Path(run_dir) / FILE
    if not (_supported(speed) and path.is_file()):
        return False
    quiet = logging.getLogger("torch.compiler._cache")  # which logs a traceback for a file it cannot read
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        loaded = torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - any failure of a cache means compiling anew
        loaded, why = None, f" ({type(e).__name__}: {e})"
    else:
        why = " (torch could not read it)"
    finally:
        quiet.setLevel(level)
    if loaded is None:
        warnings.warn(f"{path} did not load{why}; compiling anew", stacklevel=2)
        return False
    return True


def save(run_dir, speed):
    """After a checkpoint of a compiled run: write what this process has compiled or found in its
    cache so far to RUN/compiled.bin (atomically), unless the file holds it already: the graphs of
    the latest call, which a resumed call needs. Where nothing was compiled since the file last held
    all of it, torch is not asked (on a GPU the artifacts are tens of MB, serialised and read back at
    each checkpoint otherwise). -> whether it wrote."""
    if not _supported(speed):
        return False
    path, compiled = Path(run_dir) / FILE, _compiled()
    if _kept.get(path.resolve()) == compiled and path.is_file():
        return False
    try:
        artifacts = torch.compiler.save_cache_artifacts()
    except Exception as e:  # noqa: BLE001 - a cache is not worth a run
        warnings.warn(f"torch's compiler cache was not kept in {run_dir} ({type(e).__name__}: {e})", stacklevel=2)
        return False
    if artifacts is None:  # nothing compiled (say, on torch's eager stance throughout)
        return False
    data = artifacts[0]
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            _kept[path.resolve()] = compiled
            return False
    except OSError:  # unreadable: written anew below
        pass
    try:
        atomic_write(path, lambda p: p.write_bytes(data))
    except InputError as e:  # a full disk, say: the checkpoint is written, and a cache is not worth a run
        warnings.warn(f"{e}; training goes on without it", stacklevel=2)
        return False
    _kept[path.resolve()] = compiled
    return True
