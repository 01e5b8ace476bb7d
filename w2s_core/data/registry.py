"""The dataset registry: every name a recipe's `[data] name` may use, and the fingerprint of a dataset.

Where a new dataset goes: a Hub dataset is a formatter in `hub.py` (or `eleuther.py`) plus a
`hub_entry(...)` line below (or in `eleuther.py`); an offline one is a module with `load(cfg)` and
`identity(cfg)` (as `synthetic.py` and `movie_snippets.py`) plus a `DatasetInfo(...)` line below. A
local file needs no entry: the recipe gives its `path` instead of a `name`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from w2s_core.data import movie_snippets, synthetic
from w2s_core.data.eleuther import ELEUTHER_ENTRIES
from w2s_core.data.hub import (
    format_amazon_polarity,
    format_anthropic_hh,
    format_boolq,
    format_cosmos_qa,
    format_sciq,
    hub_entry,
)
from w2s_core.data.local import columns, file_sha256, require_file
from w2s_core.data.types import DatasetInfo
from w2s_core.errors import InputError

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        hub_entry("sciq", "allenai/sciq", format_sciq, "test", "Science exam QA, answer vs distractor"),
        hub_entry("boolq", "google/boolq", format_boolq, "validation", "Yes/no questions on a passage"),
        hub_entry("amazon_polarity", "fancyzhx/amazon_polarity", format_amazon_polarity, "test",
                  "Amazon review sentiment", version=2),  # 2: title and content joined by a space
        hub_entry("cosmos_qa", "allenai/cosmos_qa", format_cosmos_qa, "validation",
                  "Commonsense reading comprehension, answer vs distractor",
                  parquet=True),  # script-based on the Hub: its Parquet conversion loads with datasets >= 4
        hub_entry("anthropic_hh", "Anthropic/hh-rlhf", format_anthropic_hh, "test",
                  "Chosen vs rejected assistant reply (chance level in the reference)"),
        *ELEUTHER_ENTRIES,  # the EleutherAI/w2s breadth (data/eleuther.py)
        DatasetInfo("synthetic", synthetic.load, synthetic.identity,
                    "Generated word-polarity task for the tiny built-in models (offline)"),
        DatasetInfo("movie-snippets", movie_snippets.load, movie_snippets.identity,
                    "10,605 movie-review snippets with human sentiment ratings (offline, `w2s assets install demo`)"),
    )
}  # fmt: skip


def source(cfg: dict) -> tuple[str, DatasetInfo | None]:
    """A human name for the data, and its registry entry (None for a local file)."""
    if ("name" in cfg) == ("path" in cfg):
        raise InputError("The recipe's [data] table needs exactly one of `name` (a registered dataset) or `path`.")
    if "path" in cfg:
        return str(cfg["path"]), None
    if cfg["name"] not in DATASETS:
        raise InputError(
            f"Unknown dataset name '{cfg['name']}' in the recipe's [data] table; registered: "
            f'{", ".join(DATASETS)}. For your own data use `path = "..."` (.jsonl/.json/.csv/.parquet).'
        )
    return cfg["name"], DATASETS[cfg["name"]]


def dataset_fingerprint(cfg: dict) -> str:
    """sha256 hex of what determines the pools' content; n_train, n_test and seeds are left to the planner."""
    name, info = source(cfg)
    if info is None:
        path = Path(name)
        require_file(path)
        identity = {"sha256": file_sha256(path), **columns(cfg)}
    else:
        identity = {"dataset": info.name, **info.identity(cfg)}
    identity["balance"] = bool(cfg.get("balance", False))
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
