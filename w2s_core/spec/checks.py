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


class Problems:
    """Collects problems so the user sees all of them in one message, each naming its key."""

    def __init__(self, path: Path, aliases: dict[str, str] | None = None):
        self.path = path
        self.aliases = aliases or {}  # names from other tools -> ours, for the did-you-mean hint
        self.items: list[str] = []

    def add(self, key: str, msg: str) -> None:
        self.items.append(f"{key}: {msg}")

    def unknown(self, where: str, key: str, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        hint = did_you_mean(key, allowed, self.aliases)
        self.add(f"{where}{key}", f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")

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
                self.add(f"{where}{key}", f"expected {expected}, got {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise InputError(f"{self.path}: invalid recipe ({len(self.items)} problem(s)):\n{lines}")


def without_defaults(values: dict, defaults: dict) -> dict:
    """`values` less each key that has its value in `defaults`."""
    return {k: v for k, v in values.items() if not (k in defaults and v == defaults[k])}
