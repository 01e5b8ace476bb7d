"""Value checks for recipe keys, and the collector that reports every problem of a recipe at once.

A check takes a value and returns None when it is fine, else the words "expected ..." ends with
("a positive integer"). Schemas in `recipe.py` map each key to one check, so adding a key is one
line there and its error message comes for free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from w2s_core.errors import InputError, did_you_mean

# A check returns None when the value is fine, else what was expected.
Check = Callable[[Any], "str | None"]


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # TOML's true is not the number 1


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pos_int(v: Any) -> str | None:
    return None if is_int(v) and v > 0 else "a positive integer"


def nonneg_int(v: Any) -> str | None:
    return None if is_int(v) and v >= 0 else "an integer >= 0"


def pos_num(v: Any) -> str | None:
    return None if is_num(v) and v > 0 else "a positive number"


def nonneg_num(v: Any) -> str | None:
    return None if is_num(v) and v >= 0 else "a number >= 0"


def fraction(v: Any) -> str | None:
    return None if is_num(v) and 0 <= v <= 1 else "a number between 0 and 1"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "a list of strings"


def nonneg_int_list(v: Any) -> str | None:
    ok = isinstance(v, list) and bool(v) and all(is_int(x) and x >= 0 for x in v)
    return None if ok else "a non-empty list of integers >= 0"


def generative_text(v: Any) -> str | None:
    """[[generative]] text: "task" (the task's own unlabelled inputs) or {path = "..."} (a local text file)."""
    if v == "task" or (isinstance(v, dict) and set(v) == {"path"} and isinstance(v["path"], str) and v["path"]):
        return None
    return '"task" or a table {path = "..."} naming a local text file'


def table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a table"


LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def lora_value(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, dict):
        bad = set(v) - set(LORA_KEYS)
        if not bad:
            return None
        return f"a table with keys {', '.join(LORA_KEYS)} (unknown: {', '.join(sorted(bad))})"
    return "true, false or a table {r, alpha, dropout, target_modules}"


# Where a list can be a grid (w2s_core.spec.grid), and why it cannot elsewhere, by table (or by key).
GRID_KEYS = "[train] keys, a [[models]] entry's training settings and [[transfer]]/[[bootstrap]] parameters"
UNSWEPT = {
    "data": "[data] is shared by every grid point (write one recipe per data setting)",
    "launch": "[launch] says where jobs run, not what they compute",
    "prompt": "a [[prompt]] table takes lists only for `models` and `shots`",
    "generative": "a [[generative]] stage takes a list only for `models`",
    "transfer": "give each variant its own [[transfer]] table",
    "bootstrap": "give each variant its own [[bootstrap]] table",
    "models": "a model's identity and placement do not sweep: give each variant its own [[models]] entry",
    "checkpoint_every": "`checkpoint_every` changes no result",
}


def grid_hint(where: str, key: str) -> str:
    """Why a list at `where`+`key` (a key that takes one value there) is not a grid, for its message."""
    section = where.split(".")[0].split("[")[0]
    reason = UNSWEPT.get(key) or UNSWEPT.get(section) or "this key takes one value"
    return f"; a list here is no grid: {reason} (grids sweep only {GRID_KEYS})"


class Problems:
    """Collects problems so the user sees all of them in one message, each naming its key."""

    def __init__(self, path: Path, aliases: dict[str, str] | None = None, prefix: str = "", label: str = ""):
        self.path = path
        self.aliases = aliases or {}  # names from other tools -> ours, for the did-you-mean hint
        self.items: list[str] = []
        self.prefix = prefix  # "task[1]." for a suite's sub-recipe, so each key is named as written
        self.label = label  # " (task 'boolq')": which sub-recipe, by its name

    def child(self, prefix: str, label: str = "") -> Problems:
        """A collector for a part of the recipe (a suite's [[task]]) whose keys start with `prefix`;
        its problems land in this one's list, so they are still all reported at once."""
        sub = Problems(self.path, self.aliases, self.prefix + prefix, label)
        sub.items = self.items
        return sub

    def add(self, key: str, msg: str) -> None:
        self.items.append(f"{self.prefix}{key}{self.label}: {msg}")

    def unknown(self, where: str, key: str, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        hint = did_you_mean(key, allowed, self.aliases)
        self.add(f"{where}{key}", f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")

    def known(self, name: Any, names: list[str], key: str) -> bool:
        """Whether `name` is one of the recipe's `names`; else a problem at `key` with the closest name."""
        if name in names:
            return True
        known = ", ".join(names) or "none"
        self.add(key, f"unknown model {name!r}{did_you_mean(str(name), names)}; the recipe's models are: {known}")
        return False

    def check_table(self, where: str, values: dict, schema: dict[str, Check], extra: Iterable[str] = ()) -> None:
        """Every key of `values` known to `schema` (or in `extra`), every value passing its check."""
        extra = tuple(extra)
        for key, value in values.items():
            if key in extra:
                continue
            if key not in schema:
                self.unknown(where, key, list(schema) + list(extra))
                continue
            expected = schema[key](value)
            if expected:
                # a list where one value is expected reads like a grid; keys that take lists are left be
                hint = grid_hint(where, key) if isinstance(value, list) and "list" not in expected else ""
                self.add(f"{where}{key}", f"expected {expected}, got {value!r}{hint}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise InputError(f"{self.path}: invalid recipe ({len(self.items)} problem(s)):\n{lines}")


def without_defaults(values: dict, defaults: dict) -> dict:
    """`values` less each key that has its value in `defaults`."""
    return {k: v for k, v in values.items() if not (k in defaults and v == defaults[k])}
