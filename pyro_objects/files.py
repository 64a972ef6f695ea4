"""Writing files so that nothing is ever half-written or written over by mistake."""
import os
from pathlib import Path


def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path over path: readers see the old file or the new, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
