"""Where the Hugging Face caches are, whether a dataset is in them, and the variables a compute node needs.

Paths are read from the environment at call time: huggingface_hub and datasets freeze their own
copies when first imported, so a process that changes them later (`w2s prefetch --to DIR`) must
pass the paths explicitly. No `datasets` import: `w2s datasets` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hf_home() -> Path:
    return Path(
        os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    ).expanduser()


def hub_cache() -> Path:
    """Models and raw dataset files downloaded from the Hub (huggingface_hub's cache)."""
    value = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(value).expanduser() if value else hf_home() / "hub"


def datasets_cache() -> Path:
    """Prepared Arrow tables (the `datasets` library's cache)."""
    value = os.environ.get("HF_DATASETS_CACHE")
    return Path(value).expanduser() if value else hf_home() / "datasets"


def dataset_in_cache(hub_id: str) -> bool:
    """Whether `hub_id` was ever loaded with these caches: its raw files in the Hub cache or its
    prepared tables in the datasets cache (datasets names that folder `org___name`)."""
    raw = hub_cache() / ("datasets--" + hub_id.replace("/", "--"))
    prepared = datasets_cache() / hub_id.replace("/", "___")
    return raw.is_dir() or prepared.is_dir()


def cache_env(to: str | Path | None = None) -> dict[str, str]:
    """The cache variables for a prefetch into `to` (None: the current caches, made explicit)."""
    if to is None:
        return {"HF_HUB_CACHE": str(hub_cache()), "HF_DATASETS_CACHE": str(datasets_cache())}
    root = Path(to).expanduser().resolve()
    return {"HF_HOME": str(root), "HF_HUB_CACHE": str(root / "hub"), "HF_DATASETS_CACHE": str(root / "datasets")}


def offline_env(to: str | Path | None = None) -> dict[str, str]:
    """What to export on a compute node without internet so that jobs read only the prefetched caches."""
    return {**dict.fromkeys(OFFLINE_VARS, "1"), **cache_env(to)}
