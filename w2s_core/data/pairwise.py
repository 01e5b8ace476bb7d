"""Pairwise comparisons (`[data] kind = "pairwise"`): a prompt and two replies, one of them preferred.

A pool row is (prompt, label, (reply_0, reply_1)) with label the index of the chosen reply. The two
replies' order is randomised per pair from a sha256 of the pair's own content (prompt, chosen,
rejected), never from the row's position or the run seed: the same pair has the same order in every
file, subset and process, and about half the pairs put the chosen reply first, so a reward model
cannot learn the answer from the position. As in the paper's reward-modelling setting, a reward
model reads one text per reply (`pair_text`) and compares the two scores.

Local files (.jsonl/.json/.csv/.parquet) map their columns with `chosen_column` (default "chosen"),
`rejected_column` (default "rejected") and `prompt_column` (default "prompt", used only when the
file has it: HH-style files hold whole transcripts in chosen/rejected and no prompt).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from w2s_core.data.local import check_columns, read_records
from w2s_core.data.types import Example

PAIR_DEFAULTS = {"chosen_column": "chosen", "rejected_column": "rejected", "prompt_column": "prompt"}


def pair_text(prompt: str, reply: str) -> str:
    """The one text a reward model reads for one reply: the reply alone when the prompt is empty,
    else the prompt and the reply joined by a newline, unless either side already has whitespace
    there (an HH prompt ends in "Assistant:" and its reply starts with a space: joined as they are,
    the transcript comes back unchanged)."""
    if not prompt:
        return reply
    if prompt[-1:].isspace() or reply[:1].isspace():
        return prompt + reply
    return f"{prompt}\n{reply}"


def chosen_first(prompt: str, chosen: str, rejected: str) -> bool:
    """Whether the pair shows its chosen reply first: one sha256 bit of the pair's content."""
    digest = hashlib.sha256(json.dumps(["w2s/pair-order", prompt, chosen, rejected]).encode()).digest()
    return bool(digest[0] & 1)


def pair_row(prompt: str, chosen: str, rejected: str) -> Example:
    """(prompt, index of the chosen reply, the two replies in their content-seeded order)."""
    if chosen_first(prompt, chosen, rejected):
        return prompt, 0, (chosen, rejected)
    return prompt, 1, (rejected, chosen)


def pair_columns(cfg: dict) -> dict[str, str]:
    """The recipe's pairwise column mapping, keyed by its config key (for errors and the fingerprint)."""
    return {key: cfg.get(key) or default for key, default in PAIR_DEFAULTS.items()}


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def load_pairs(cfg: dict) -> list[Example]:
    """Every row of the recipe's file as a pair; a missing chosen or rejected column is an InputError
    naming the file, the column, its recipe key and the file's columns. Pairs with a blank reply, or
    two identical replies, are kept here and never drawn (`splits.usable`)."""
    path = Path(cfg["path"])
    rows, names = read_records(path)
    mapping = pair_columns(cfg)
    prompt_col = mapping.pop("prompt_column")
    check_columns(path, names, mapping)
    if cfg.get("prompt_column") and prompt_col not in names:  # asked for by name: it must be there
        check_columns(path, names, {"prompt_column": prompt_col})
    use_prompt = prompt_col in names
    return [
        pair_row(
            _cell(r.get(prompt_col)) if use_prompt else "",
            _cell(r.get(mapping["chosen_column"])),
            _cell(r.get(mapping["rejected_column"])),
        )
        for r in rows
    ]
