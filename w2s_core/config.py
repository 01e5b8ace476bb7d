"""The user's own w2s settings: `$W2S_CONFIG`, else ~/.config/w2s/config.toml (no file: no settings).

Today it holds the notification command the supervisor runs when a run finishes or fails, or a job
crashes (supervision/notify.py):

    [notify]
    command = 'notify-send "w2s run $W2S_RUN_ID: $W2S_STATUS" "$W2S_SUMMARY"'
    timeout = 30                          # seconds before the command is killed
    on = ["done", "failed", "crashed"]    # which events run it

    [notify.recipes.lr-sweep]             # per recipe (by its name): replaces the keys it sets
    command = "curl -s -d \"$W2S_SUMMARY\" https://ntfy.sh/my-topic"

Shell commands live here and only here: a recipe may come from someone else, and w2s never runs a
command the user did not write into their own config (a recipe's [notify] table is refused).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from w2s_core.errors import InputError, did_you_mean

DEFAULT_PATH = Path("~/.config/w2s/config.toml")
NOTIFY_EVENTS = ("done", "failed", "crashed")  # run done; run failed or interrupted; job crashed
NOTIFY_DEFAULTS: dict[str, Any] = {"command": "", "timeout": 30.0, "on": list(NOTIFY_EVENTS)}
MAX_TIMEOUT_S = 3600.0
_NOTIFY_KEYS = ("command", "timeout", "on")
TOP_KEYS = ("notify",)


def config_path() -> Path:
    """Where the config is read from: $W2S_CONFIG, else ~/.config/w2s/config.toml."""
    return Path(os.environ.get("W2S_CONFIG") or DEFAULT_PATH).expanduser()


def load_config() -> dict:
    """The validated config ({} when there is no file); InputError naming the file and key otherwise."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"{path}: cannot read the w2s config: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    problems = _problems(raw)
    if problems:
        raise InputError(f"{path}: invalid w2s config:\n" + "\n".join(f"  - {p}" for p in problems))
    return raw


def _problems(raw: dict) -> list[str]:
    problems = [
        f"{key}: unknown key{did_you_mean(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}"
        for key in raw
        if key not in TOP_KEYS
    ]
    notify = raw.get("notify", {})
    if not isinstance(notify, dict):
        return [*problems, f"notify: expected a table [notify], got {notify!r}"]
    problems += _notify_problems("notify", notify, (*_NOTIFY_KEYS, "recipes"))
    recipes = notify.get("recipes", {})
    if not isinstance(recipes, dict):
        return [*problems, f"notify.recipes: expected tables [notify.recipes.NAME], got {recipes!r}"]
    for name, table in recipes.items():
        where = f"notify.recipes.{name}"
        if not isinstance(table, dict):
            problems.append(f"{where}: expected a table [{where}] of command/timeout/on, got {table!r}")
        else:
            problems += _notify_problems(where, table, _NOTIFY_KEYS)
    return problems


def _notify_problems(where: str, table: dict, allowed: tuple[str, ...]) -> list[str]:
    problems = []
    for key, value in table.items():
        if key not in allowed:
            problems.append(f"{where}.{key}: unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
        elif key == "command" and not isinstance(value, str):
            problems.append(f"{where}.command: expected a shell command as a string, got {value!r}")
        elif key == "timeout" and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S
        ):
            problems.append(f"{where}.timeout: expected seconds, above 0 and at most {MAX_TIMEOUT_S:g}, got {value!r}")
        elif key == "on" and (not isinstance(value, list) or any(v not in NOTIFY_EVENTS for v in value)):
            problems.append(f"{where}.on: expected a list of events from {list(NOTIFY_EVENTS)}, got {value!r}")
    return problems


def notify_settings(config: dict, recipe: str | None) -> dict[str, Any]:
    """{command, timeout, on} for a run of recipe `recipe` (by name): [notify], with the keys its
    [notify.recipes.NAME] table sets replacing those; command "" means no notification."""
    notify = config.get("notify", {})
    settings = {**NOTIFY_DEFAULTS, **{k: v for k, v in notify.items() if k in _NOTIFY_KEYS}}
    override = notify.get("recipes", {}).get(recipe, {}) if recipe else {}
    settings.update({k: v for k, v in override.items() if k in _NOTIFY_KEYS})
    settings["timeout"] = float(settings["timeout"])
    return settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string for what a command holds


def recipe_notify_refusal(path: Path, recipe_name: str, table: Any) -> str:
    """Why a recipe's [notify] table is refused, and the same settings as the user's config holds them."""
    table_name = recipe_name if re.fullmatch(r"[A-Za-z0-9_-]+", recipe_name) else json.dumps(recipe_name)
    lines = [f"[notify.recipes.{table_name}]"]
    if isinstance(table, dict):
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if key in _NOTIFY_KEYS]
    if len(lines) == 1:
        lines.append('command = "..."')
    body = "\n".join(f"    {line}" for line in lines)
    return (
        f"{path}: [notify]: a recipe cannot run commands (it may come from someone else; w2s runs only the "
        f"commands you put in your own config). Put this in {DEFAULT_PATH} (or the file $W2S_CONFIG names) "
        f"and remove [notify] from the recipe:\n\n{body}"
    )
