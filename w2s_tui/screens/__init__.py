"""The app's screens, one module each, and the registry of those that carry bindings (for the help
screen, the keymap check and the command palette).

A screen's module is imported when it is first asked for (`from w2s_tui.screens import RunsScreen`
imports runs.py only), so the first screen draws without importing the others and their plotting
and analysis libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .help import HelpScreen
    from .history import CompareScreen, HistoryScreen
    from .live import LiveScreen
    from .recipes import RecipesScreen
    from .results import ResultsScreen
    from .runs import RunsScreen

MODULES = {
    "RecipesScreen": "recipes",
    "RunsScreen": "runs",
    "LiveScreen": "live",
    "ResultsScreen": "results",
    "HistoryScreen": "history",
    "CompareScreen": "history",
    "HelpScreen": "help",
}  # in help's order

__all__ = [
    "SCREENS_WITH_BINDINGS",
    "CompareScreen",
    "HelpScreen",
    "HistoryScreen",
    "LiveScreen",
    "RecipesScreen",
    "ResultsScreen",
    "RunsScreen",
    "screens_with_bindings",
]


def screens_with_bindings() -> tuple[type, ...]:
    """Every screen class, in the help screen's order (imports them all)."""
    return tuple(__getattr__(name) for name in MODULES)


def __getattr__(name: str):
    if name in MODULES:
        return getattr(importlib.import_module(f".{MODULES[name]}", __name__), name)
    if name == "SCREENS_WITH_BINDINGS":
        return screens_with_bindings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
