"""The w2s terminal app: one mode (screen) per task, keyboard first, reading the store read-only.

Every binding has an id so a keymap file can move it; every binding of the current screen is also
a command-palette entry (ctrl+p); `?` lists them all. The app never writes the database: runs it
launches are separate processes (see control.py), so quitting stops nothing.
"""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from w2s_core.store import DB_NAME, Store

from .help import HelpScreen
from .history import CompareScreen, HistoryScreen
from .live import LiveScreen
from .recipes import RecipesScreen
from .results import ResultsScreen
from .runs import RunsScreen

SCREENS_WITH_BINDINGS = (RecipesScreen, RunsScreen, LiveScreen, ResultsScreen, HistoryScreen, CompareScreen, HelpScreen)


class W2SApp(App):
    TITLE = "w2s"
    CSS = """
#summary, #results-title, #compare-title, #job-info { height: auto; padding: 0 1; background: $boost; }
#search { height: 3; }
#jobs { height: 1fr; }
#recipe-list { width: 30; min-width: 20; height: 1fr; }
#preview-pane { width: 1fr; height: 1fr; padding: 0 1; }
#results-body { height: 1fr; }
#pgr { height: auto; max-height: 60%; }
#grid { height: auto; padding: 1 1 0 1; }
#plots { height: 2fr; min-height: 8; }
#plots PlotextPlot { width: 1fr; }
#log { height: 1fr; min-height: 4; border-top: solid $primary; }
#compare-plot { height: 1fr; }
HelpScreen { align: center middle; }
#help { width: 90%; height: 90%; background: $panel; border: thick $primary; padding: 0 1; }
#help-table { height: auto; }
"""
    MODES = {"recipes": RecipesScreen, "runs": RunsScreen, "results": ResultsScreen, "history": HistoryScreen}
    BINDINGS = [
        Binding("1", "switch_mode('recipes')", "Recipes", id="screen.recipes"),
        Binding("2", "switch_mode('runs')", "Runs", id="screen.runs"),
        Binding("3", "switch_mode('results')", "Results", id="screen.results"),
        Binding("4", "switch_mode('history')", "History", id="screen.history"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, results_dir: str | Path, keymap: dict[str, str] | None = None, start: str | None = None):
        super().__init__()
        self.results_dir = Path(results_dir).expanduser().resolve()
        self.sub_title = str(self.results_dir)
        self._user_keymap = keymap or {}
        self._start = start
        self.launches: list[tuple[subprocess.Popen, Path]] = []  # `w2s run`s started here, and their output
        self._exited: set[int] = set()

    def on_mount(self) -> None:
        self.set_interval(1.0, self.check_launches)
        self.set_keymap(self._user_keymap)
        self.switch_mode(self._start or ("runs" if self.has_database() else "recipes"))

    def check_launches(self) -> None:
        """Say so when a `w2s run` started here exits with an error (a refused recipe, a locked store)."""
        for proc, log in self.launches:
            if proc.pid in self._exited or proc.poll() is None:
                continue
            self._exited.add(proc.pid)
            if proc.returncode != 0:
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
                self.notify(f"w2s run exited with {proc.returncode}: {lines[-1] if lines else ''} (full output: {log})",
                            severity="error", timeout=15)

    def has_database(self) -> bool:
        return (self.results_dir / DB_NAME).is_file()

    def open_store(self) -> Store | None:
        """A read-only store for the calling thread (an sqlite connection stays in the thread that
        opened it); None before the first run created the database."""
        return Store.open(self.results_dir, readonly=True) if self.has_database() else None

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def key_for(self, binding: Binding) -> str:
        """The key a binding answers to after the user's keymap."""
        return self._keymap.get(binding.id, binding.key) if binding.id else binding.key

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands, then every binding active on `screen`."""
        yield from super().get_system_commands(screen)
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.id in seen or not binding.description:
                continue
            seen.add(binding.id)
            yield SystemCommand(binding.description, f"key {self.key_for(binding)} · id {binding.id}",
                                partial(self.run_action, binding.action, active.node))


def known_binding_ids() -> set[str]:
    return {b.id for cls in (W2SApp, *SCREENS_WITH_BINDINGS) for b in cls.BINDINGS if b.id}
