"""Hugging Face Hub datasets: one formatter per dataset turning a row into (text, label), and the loader.

A new Hub dataset is a formatter here plus one `hub_entry(...)` line in `registry.py`. Formatters
draw their randomness from an rng seeded by the row's index, so a row formats the same way in
every process; bump the entry's `version` whenever a formatter's output changes (it is part of
the dataset fingerprint, so old job keys stop matching).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from w2s_core.data.types import DatasetInfo, Example, Pool
from w2s_core.errors import W2SError

Formatter = Callable[[dict, random.Random], Example]


class HubRows(Sequence):
    """Formats hub rows on access (big pools stay in Arrow); each row's rng depends only on its index."""

    def __init__(self, rows: Any, formatter: Formatter, key: str):
        self._rows, self._formatter, self._key = rows, formatter, key

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        return self._formatter(self._rows[int(i)], random.Random(f"{self._key}/{int(i)}"))


def hub_load(name: str, hub_id: str, revision: str | None, split: str) -> Any:
    """`datasets.load_dataset`, with failures turned into an actionable W2SError."""
    import datasets  # slow import: only trainers that use the Hub pay for it

    try:
        return datasets.load_dataset(hub_id, revision=revision, split=split)
    except Exception as exc:  # offline, not found, bad revision: all need the same advice
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise W2SError(
            f"Could not load dataset '{name}' (split '{split}') from the Hugging Face Hub as "
            f"'{hub_id}' (revision {revision or 'default'}): the Hub could not be reached or the "
            f"dataset was not found ({type(exc).__name__}: {first_line}). To work offline, save the "
            f"data as a local file and use `path = \"data/{name}.jsonl\"` (with text_column and "
            f"label_column) instead of `name = \"{name}\"` in the recipe's [data] table."
        ) from exc


def hub_entry(name: str, hub_id: str, formatter: Formatter, test_split: str, description: str,
              version: int = 1) -> DatasetInfo:
    """A registry entry for a Hub dataset; bump `version` whenever its formatter's output changes."""

    def load(cfg: dict) -> tuple[Pool, Pool | None]:
        train, test = (
            HubRows(hub_load(name, hub_id, cfg.get("revision"), split), formatter, f"{name}/{split}")
            for split in ("train", test_split)
        )
        return train, test

    def identity(cfg: dict) -> dict:
        return {"hub_id": hub_id, "revision": cfg.get("revision"), "formatter_version": version,
                "splits": ["train", test_split]}  # fmt: skip

    return DatasetInfo(name, load, identity, description, hub_id, "train", test_split)


def format_sciq(row: dict, rng: random.Random) -> Example:
    """The correct answer (label 1) or one random distractor (label 0), each with p=0.5."""
    label = int(rng.random() < 0.5)
    distractors = [row["distractor1"], row["distractor2"], row["distractor3"]]
    answer = row["correct_answer"] if label else rng.choice(distractors)
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
