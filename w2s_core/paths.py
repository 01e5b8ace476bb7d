"""Where w2s keeps what it downloads or generates, so every process agrees on one place."""

import contextlib
import fcntl
import os
from pathlib import Path

from w2s_core.errors import InputError


def cache_dir() -> Path:
    """The w2s cache: $W2S_CACHE, else ~/.cache/w2s."""
    root = os.environ.get("W2S_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "w2s")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def writable_results_dir(results_dir: str | Path) -> Path:
    """The results directory, created if missing and checked writable, before anything is written there."""
    root = Path(results_dir).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot create the results directory {root}: {exc.strerror or exc}. "
            "Pass a writable directory (--results-dir or $W2S_RESULTS)."
        ) from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise InputError(
            f"The results directory {root} is not writable by you. Pass a writable directory "
            "(--results-dir or $W2S_RESULTS), or fix its permissions."
        )
    return root


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path`, so parallel jobs prepare a shared file once instead of racing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
