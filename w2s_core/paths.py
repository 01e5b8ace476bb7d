"""Where w2s keeps what it downloads or generates, so every process agrees on one place."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The w2s cache: $W2S_CACHE, else ~/.cache/w2s."""
    root = os.environ.get("W2S_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "w2s")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
