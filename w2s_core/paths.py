"""Where w2s keeps what it downloads or generates, so every process agrees on one place."""

import contextlib
import fcntl
import os
from pathlib import Path


def cache_dir() -> Path:
    """The w2s cache: $W2S_CACHE, else ~/.cache/w2s."""
    root = os.environ.get("W2S_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "w2s")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path`, so parallel jobs prepare a shared file once instead of racing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
