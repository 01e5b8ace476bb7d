"""User key remapping, as Posting does it: a TOML file maps binding ids to keys.

    [keymap]
    "runs.cancel" = "x"
    "screen.results" = "f3"

Read from --keymap, else $W2S_KEYMAP, else ~/.config/w2s/keymap.toml when it exists. A key that
would answer to two bindings on one screen (after the remapping) is refused, naming both ids, as an
unknown id is: Textual would silently let one hide the other.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from textual.binding import Binding

from w2s_core.errors import InputError, did_you_mean

DEFAULT_PATH = Path("~/.config/w2s/keymap.toml")


def keymap_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("W2S_KEYMAP"):
        return Path(os.environ["W2S_KEYMAP"])
    default = DEFAULT_PATH.expanduser()
    return default if default.is_file() else None


def conflicts(scopes: dict[str, list[Binding]], keymap: dict[str, str]) -> list[str]:
    """Each key that two bindings of one scope (a screen, with the app's bindings) answer to once
    `keymap` is applied: "screen: key "f" is both runs.cancel and runs.status"."""
    found = []
    for scope, bindings in scopes.items():
        owner: dict[str, str] = {}
        for b in bindings:
            for key in keymap.get(b.id, b.key).split(","):
                key = key.strip()
                if key in owner and owner[key] != b.id:
                    found.append(f'{scope}: key "{key}" is both {owner[key]} and {b.id}; give one of them another key')
                owner.setdefault(key, b.id)
    return list(dict.fromkeys(found))


def load_keymap(
    path: Path | None, known_ids: set[str], scopes: dict[str, list[Binding]] | None = None
) -> dict[str, str]:
    """{binding id: key(s)} from the file; an unknown id, a non-string key or (given the bindings of
    each screen, `scopes`) a key two bindings of one screen would answer to is an InputError."""
    if path is None:
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: keymap file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    table = raw.get("keymap", raw)
    problems = []
    if not isinstance(table, dict):
        table, problems = {}, ['keymap: expected a table of binding id = "key"']
    for binding_id, key in table.items():
        if binding_id not in known_ids:
            problems.append(
                f"{binding_id}: unknown binding id{did_you_mean(binding_id, known_ids)}; "
                f"known: {', '.join(sorted(known_ids))}"
            )
        elif not isinstance(key, str) or not key.strip():
            problems.append(f'{binding_id}: expected a key name such as "x" or "ctrl+k", got {key!r}')
    if not problems and scopes:
        problems = conflicts(scopes, table)
    if problems:
        raise InputError(f"{path}: invalid keymap:\n" + "\n".join(f"  - {p}" for p in problems))
    return dict(table)
