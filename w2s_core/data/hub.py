"""Hugging Face Hub datasets: where each lives (HubSource), the loader, and the original five formatters
(and anthropic_hh's pairwise one, for `[data] kind = "pairwise"`).

A new Hub dataset is a formatter (here, or in `eleuther.py` for the EleutherAI/w2s breadth) plus one
`hub_entry(...)` line in the registry. Formatters draw their randomness from an rng seeded by the
row's index, so a row formats the same way in every process; bump the entry's `version` whenever a
formatter's output changes (it is part of the dataset fingerprint, so old job keys stop matching).

`datasets` >= 4 no longer runs dataset scripts (RuntimeError "Dataset scripts are no longer
supported, but found X.py"). The Hub keeps an automatic Parquet conversion of such repos on the
branch `refs/convert/parquet`, where a script without named configs has its config called
`default`. Entries known to be script-based (`parquet=True`) load that branch directly, and say so
in their fingerprint; any other entry that turns out to be script-based falls back to it once, with
a note on stderr (the job's log) and in `LOADS`, the provenance of every load in this process.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from w2s_core.data.pairwise import pair_row
from w2s_core.data.types import DatasetInfo, Example, Pool
from w2s_core.errors import W2SError

Formatter = Callable[[dict, random.Random], Example]
PARQUET_REVISION = "refs/convert/parquet"
SCRIPT_ERROR = "Dataset scripts are no longer supported"
TRUTHY = ("1", "ON", "YES", "TRUE")
HH_ASSISTANT = "\n\nAssistant:"  # where an Anthropic HH transcript's assistant turn starts


@dataclass(frozen=True)
class HubSource:
    """Where a registry dataset lives on the Hub, and what the reference did with it."""

    hub_id: str
    config: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    revision: str | None = None  # None: the default branch (the recipe's [data] revision pins a commit)
    parquet: bool = False  # script-based on the Hub: load its Parquet conversion (refs/convert/parquet)
    parquet_config: str | None = None  # its config name on that branch (default: `config`, else "default")
    reference: str = ""  # the file whose prompt format and binary conversion the formatter follows

    def load_revision(self, override: str | None) -> str | None:
        return override or (PARQUET_REVISION if self.parquet else self.revision)


HUB_SOURCES: dict[str, HubSource] = {}  # registry name -> its source (filled by hub_entry)
LOADS: list[dict] = []  # provenance of every Hub load in this process: what was asked, what was loaded


class HubRows(Sequence):
    """Formats hub rows on access (big pools stay in Arrow); each row's rng depends only on its index."""

    def __init__(self, rows: Any, formatter: Formatter, key: str, provenance: dict | None = None):
        self._rows, self._formatter, self._key = rows, formatter, key
        self.provenance = provenance or {}

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        return self._formatter(self._rows[int(i)], random.Random(f"{self._key}/{int(i)}"))


def env_flag(name: str) -> bool:
    """Read now, not at import: huggingface_hub and datasets freeze their own copies when first imported."""
    return os.environ.get(name, "").upper() in TRUTHY


def _call(hub_id: str, config: str | None, revision: str | None, split: str, cache_dir: str | None) -> Any:
    """The one place that calls `datasets.load_dataset` (tests replace it there)."""
    import datasets  # slow import: only trainers that use the Hub pay for it

    kwargs: dict = {"revision": revision, "split": split}
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    return datasets.load_dataset(hub_id, config, **kwargs) if config else datasets.load_dataset(hub_id, **kwargs)


def _load_parquet(src: HubSource, revision: str, split: str, cache_dir: str | None) -> tuple[Any, str]:
    """The Parquet conversion: its config is the script's config name, or `default` when it had none."""
    names = [src.parquet_config or src.config or "default"]
    if names[0] != "default":
        names.append("default")
    for i, config in enumerate(names):
        try:
            return _call(src.hub_id, config, revision, split, cache_dir), config
        except ValueError as exc:  # "BuilderConfig 'x' not found": try the next name
            if i + 1 == len(names) or "config" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _advice(name: str, src: HubSource, revision: str | None, split: str, exc: Exception) -> W2SError:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    what = f"{src.hub_id}" + (f" (config '{src.config}')" if src.config else "")
    tried = f"revision {revision or 'default branch'}, split '{split}'"
    cause = f"({type(exc).__name__}: {first_line})"
    if env_flag("HF_DATASETS_OFFLINE") or env_flag("HF_HUB_OFFLINE"):
        fix = (
            f"HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set, so only the cache was searched "
            f"(HF_DATASETS_CACHE={os.environ.get('HF_DATASETS_CACHE', 'default')}). Run `w2s prefetch RECIPE` "
            "on a machine with network (the login node) with the same cache variables, then run again"
        )
    elif SCRIPT_ERROR in str(exc):
        fix = (
            f"the repo is script-based and a pinned revision cannot be mapped to its Parquet conversion: "
            f"pin a commit of the '{PARQUET_REVISION}' branch instead (`w2s prefetch` prints it)"
        )
    else:
        fix = "the Hub could not be reached or the dataset, config, split or revision was not found"
    return W2SError(
        f"Could not load dataset '{name}' from the Hugging Face Hub as {what}, {tried} {cause}: {fix}. "
        f'To work without the Hub, save the data as a local file and use `path = "data/{name}.jsonl"` '
        f'(with text_column and label_column) instead of `name = "{name}"` in the recipe\'s [data] table.'
    )


def hub_load(
    name: str, src: HubSource, revision: str | None, split: str, cache_dir: str | None = None
) -> tuple[Any, dict]:
    """One split of a registry dataset and the record of what was loaded; failures become a W2SError
    naming the dataset, the revision tried and the fix."""
    wanted = src.load_revision(revision)
    record = {
        "dataset": name,
        "hub_id": src.hub_id,
        "split": split,
        "requested_revision": revision,
        "revision": wanted,
        "config": src.config,
        "parquet_conversion": src.parquet,
    }
    try:
        if src.parquet:
            rows, record["config"] = _load_parquet(src, wanted, split, cache_dir)
        else:
            try:
                rows = _call(src.hub_id, src.config, wanted, split, cache_dir)
            except RuntimeError as exc:
                if SCRIPT_ERROR not in str(exc) or wanted is not None:
                    raise
                record.update(revision=PARQUET_REVISION, parquet_conversion=True, fallback=True)
                rows, record["config"] = _load_parquet(src, PARQUET_REVISION, split, cache_dir)
                print(
                    f"note: dataset '{name}' ({src.hub_id}) is script-based on the Hub; loaded its Parquet "
                    f"conversion ({PARQUET_REVISION}, config '{record['config']}')",
                    file=sys.stderr,
                )
    except W2SError:
        raise
    except Exception as exc:  # offline, not found, bad revision: each gets its own advice
        raise _advice(name, src, record["revision"], split, exc) from exc
    LOADS.append(record)
    return rows, record


def hub_entry(
    name: str,
    hub_id: str,
    formatter: Formatter,
    test_split: str,
    description: str,
    version: int = 1,
    other_kinds: dict[str, tuple[Formatter, int]] | None = None,
    **source: Any,
) -> DatasetInfo:
    """A registry entry for a Hub dataset (`source`: the other HubSource fields); bump `version`
    whenever its formatter's output changes. `other_kinds` maps a [data] kind other than "classify"
    to its formatter and that formatter's version (the fingerprint then also holds the kind)."""
    src = HubSource(hub_id, test_split=test_split, **source)
    HUB_SOURCES[name] = src
    others = dict(other_kinds or {})

    def load(cfg: dict, cache_dir: str | None = None) -> tuple[Pool, Pool | None]:
        kind = cfg.get("kind", "classify")
        fmt = formatter if kind == "classify" else others[kind][0]
        pools = []
        for split in (src.train_split, src.test_split):
            rows, record = hub_load(name, src, cfg.get("revision"), split, cache_dir)
            pools.append(HubRows(rows, fmt, f"{name}/{split}", record))
        return pools[0], pools[1]

    def identity(cfg: dict) -> dict:
        kind = cfg.get("kind", "classify")
        out = {
            "hub_id": hub_id,
            "revision": cfg.get("revision") or src.revision,
            "formatter_version": version if kind == "classify" else others[kind][1],
            "splits": [src.train_split, test_split],
        }
        if src.config:
            out["config"] = src.config
        if src.parquet:  # what is loaded is the Hub's Parquet conversion of a script-based repo
            out["source"] = PARQUET_REVISION
        return out

    kinds = ("classify", *others)
    return DatasetInfo(name, load, identity, description, hub_id, src.train_split, test_split, kinds)


def pick_answer(answers: list[str], correct: int, rng: random.Random) -> tuple[str, int]:
    """A multiple-choice row as binary: the correct answer (label 1) or a random other one (label 0), p = 0.5."""
    label = int(rng.random() < 0.5)
    if label:
        return answers[correct], 1
    return rng.choice([a for i, a in enumerate(answers) if i != correct]), 0


def sciq_answer(row: dict, rng: random.Random) -> tuple[str, int]:
    """A sciq row's correct answer or one of its three distractors (`pick_answer`)."""
    return pick_answer([row["correct_answer"], row["distractor1"], row["distractor2"], row["distractor3"]], 0, rng)


def format_sciq(row: dict, rng: random.Random) -> Example:
    """The correct answer (label 1) or one random distractor (label 0), each with p=0.5."""
    answer, label = sciq_answer(row, rng)
    return f"Q: {row['question']} A: {answer}", label


def format_boolq(row: dict, rng: random.Random) -> Example:
    return f"Passage: {row['passage']}\nQuestion: {row['question']}", int(row["answer"])


def format_amazon_polarity(row: dict, rng: random.Random) -> Example:
    """Title and review joined by one space, as both references do (openai/weak-to-strong and EleutherAI/w2s
    `format_amazon_polarity`); the registry entry's version 2 marks the change from a newline."""
    return f"{row['title']} {row['content']}", int(row["label"])


def format_cosmos_qa(row: dict, rng: random.Random) -> Example:
    """Correct answer (1) or another option (0) with p=0.5; as in the reference, a correct
    "None of the above choices ." always yields a distractor (label 0)."""
    answers = [row[f"answer{i}"] for i in range(4)]
    true_answer = answers[int(row["label"])]
    label = 0 if "None of the above choices" in true_answer else int(rng.random() < 0.5)
    answer = true_answer if label else rng.choice([a for a in answers if a != true_answer])
    return f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {answer}", label


def format_anthropic_hh(row: dict, rng: random.Random) -> Example:
    """The conversation ending in the chosen (1) or rejected (0) reply with p=0.5. The reference
    (openai/weak-to-strong) reports chance accuracy for every model size on this format."""
    label = int(rng.random() < 0.5)
    return (row["chosen"] if label else row["rejected"]), label


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen reply, rejected reply) of two HH transcripts: the prompt is their shared prefix
    up to and including its last "\\n\\nAssistant:"; the replies are what follows (each starts with
    its space, so `pair_text` gives the transcripts back). No shared turn: prompt "" and the whole texts."""
    cut = os.path.commonprefix([chosen, rejected]).rfind(HH_ASSISTANT)
    if cut < 0:
        return "", chosen, rejected
    end = cut + len(HH_ASSISTANT)
    return chosen[:end], chosen[end:], rejected[end:]


def format_anthropic_hh_pair(row: dict, rng: random.Random) -> Example:
    """`kind = "pairwise"`: the shared conversation as the prompt, the two final replies as the
    choices in their content-seeded order (`pairwise.pair_row`; the row's rng is not used), label the
    chosen one's index. This is the paper's reward-modelling form of the same data."""
    return pair_row(*split_hh(str(row["chosen"]), str(row["rejected"])))
