"""The dataset registry: every name a recipe's `[data] name` may use, and the fingerprint of a dataset.

Where a new dataset goes: a Hub dataset is a formatter in `hub.py` (or `eleuther.py`) plus a
`hub_entry(...)` line below (or in `eleuther.py`); an offline one is a module with `load(cfg)` and
`identity(cfg)` (as `synthetic.py` and `movie_snippets.py`) plus a `DatasetInfo(...)` line below. A
local file needs no entry: the recipe gives its `path` instead of a `name`. An entry lists the
`[data] kind`s it supports (`kinds`); `kind_problem` is the recipe-time check, `load_pools` reads
the pools of any kind (a local file as classes, pairs or Lichess puzzles).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from w2s_core.data import mate_in_one, movie_snippets, pair_tasks, synthetic
from w2s_core.data.eleuther import ELEUTHER_ENTRIES
from w2s_core.data.hub import (
    format_amazon_polarity,
    format_anthropic_hh,
    format_anthropic_hh_pair,
    format_boolq,
    format_cosmos_qa,
    format_sciq,
    hub_entry,
)
from w2s_core.data.local import columns, file_sha256, load_classes, require_file
from w2s_core.data.pairwise import load_pairs, pair_columns
from w2s_core.data.puzzles import load_puzzles
from w2s_core.data.types import DATA_KINDS, DatasetInfo, Pool
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
                  "Chosen vs rejected assistant reply (chance level in the reference; kind = \"pairwise\": the pairs)",
                  other_kinds={"pairwise": (format_anthropic_hh_pair, 1)}),
        *ELEUTHER_ENTRIES,  # the EleutherAI/w2s breadth (data/eleuther.py)
        DatasetInfo("synthetic", synthetic.load, synthetic.identity,
                    "Generated word-polarity task for the tiny built-in models (offline)"),
        DatasetInfo("movie-snippets", movie_snippets.load, movie_snippets.identity,
                    "10,605 movie-review snippets with human sentiment ratings (offline, `w2s assets install demo`)"),
        DatasetInfo("synthetic-pairs", pair_tasks.load_synthetic_pairs, pair_tasks.synthetic_pairs_identity,
                    "Pairs of synthetic texts, the more positive one preferred (offline, kind = \"pairwise\")",
                    kinds=("pairwise",)),
        DatasetInfo("movie-pairs", pair_tasks.load_movie_pairs, pair_tasks.movie_pairs_identity,
                    "Pairs of movie snippets, the one humans rated more positive preferred "
                    "(offline, `w2s assets install demo`, kind = \"pairwise\")", kinds=("pairwise",)),
        DatasetInfo("mate-in-one", mate_in_one.load, mate_in_one.identity,
                    "Generated chess positions with exactly one mating move (offline, kind = \"chess\")",
                    kinds=("chess",)),
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


def kind_problem(cfg: dict) -> str | None:
    """What is wrong with the [data] table's `kind` for its data (None when nothing is), for recipe checks."""
    kind = cfg.get("kind", "classify")
    if kind not in DATA_KINDS:
        return f"unknown data kind {kind!r}; known: {', '.join(DATA_KINDS)}"
    name = cfg.get("name")
    if isinstance(name, str) and name in DATASETS and kind not in DATASETS[name].kinds:
        supported = " or ".join(repr(k) for k in DATASETS[name].kinds)
        return f"dataset {name!r} supports kind {supported}, not {kind!r}"
    path = cfg.get("path")
    if kind == "chess" and isinstance(path, str) and not path.lower().endswith(".csv"):
        return f"kind 'chess' reads a Lichess puzzle CSV (.csv), but path is {path!r}"
    if kind == "chess" and cfg.get("balance"):
        return "balance = true needs classes, but chess examples each have their own legal moves: leave balance out"
    return None


def _check_kind(cfg: dict) -> str:
    problem = kind_problem(cfg)
    if problem:
        raise InputError(f"The recipe's [data] kind: {problem}.")
    return cfg.get("kind", "classify")


def load_pools(cfg: dict) -> tuple[Pool, Pool | None, int]:
    """(train pool, test pool or None to hold the test set out of train, n_classes) of the [data]
    table: K for classify (2 for every registered dataset), 2 for pairwise, 0 for chess."""
    kind = _check_kind(cfg)
    _, info = source(cfg)
    n_classes = {"classify": 2, "pairwise": 2, "chess": 0}[kind]
    if info is not None:
        train, test = info.load(cfg)
    elif kind == "pairwise":
        train, test = load_pairs(cfg), None
    elif kind == "chess":
        train, test = load_puzzles(cfg), None
    else:
        (train, n_classes), test = load_classes(cfg), None
    return train, test, n_classes


def class_count(cfg: dict) -> int:
    """n_classes of the [data] table's data without drawing splits (reads a local classify file)."""
    kind = _check_kind(cfg)
    if kind != "classify":
        return 2 if kind == "pairwise" else 0
    return load_classes(cfg)[1] if "path" in cfg else 2


def dataset_fingerprint(cfg: dict) -> str:
    """sha256 hex of what determines the pools' content; n_train, n_test and seeds are left to the planner.
    Only a kind other than "classify" adds keys (the kind, and a local pairwise file's columns), so
    classify fingerprints are what they were before kinds existed."""
    name, info = source(cfg)
    kind = _check_kind(cfg)
    if info is None:
        path = Path(name)
        require_file(path)
        mapping = pair_columns(cfg) if kind == "pairwise" else {} if kind == "chess" else columns(cfg)
        identity = {"sha256": file_sha256(path), **mapping}
    else:
        identity = {"dataset": info.name, **info.identity(cfg)}
    identity["balance"] = bool(cfg.get("balance", False))
    if kind != "classify":
        identity["kind"] = kind
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
