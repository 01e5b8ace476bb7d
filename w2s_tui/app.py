"""The w2s terminal app: one mode (screen) per task, keyboard first, reading the store read-only.

Every binding has an id so a keymap file can move it; the command palette (ctrl+p) lists every
binding of every screen (one of another screen switches there first), and `?` lists them all. The app
never writes the database: runs it launches are separate processes (see control.py), so quitting
stops nothing. No toast interprets Rich markup: messages carry recipe, model and error text as written.

Screens live in screens/, shared widgets in widgets/, the layout in app.tcss; workers read off the UI
thread and post the Messages of messages.py (see workers.py). Whatever the screen, the app rings the
terminal bell and shows a toast when a run finishes or fails or a job crashes while it is open (alerts.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from w2s_core.errors import W2SError
from w2s_core.store import DB_NAME, Store

from . import screens
from .alerts import RunWatch
from .keymap import DEFAULT_PATH
from .messages import Notice, ReadFailed, RunsEnded
from .workers import read_in_thread

if TYPE_CHECKING:
    from .screens.help import HelpRow

__all__ = ["LaunchError", "W2SApp", "binding_scopes", "known_binding_ids"]  # and SCREENS_WITH_BINDINGS, lazily

SCREEN_KEYS = Binding.Group("Screens", compact=True)
MODE_SCREENS = {
    "recipes": "RecipesScreen",
    "runs": "RunsScreen",
    "results": "ResultsScreen",
    "history": "HistoryScreen",
}
LAUNCH_LOG_LINES = 12  # lines of a failed launch's output kept on the Recipes screen
WATCH_S = 2.0  # how often the app looks for runs that ended and jobs that crashed (alerts.py)


@dataclass
class LaunchError:
    """A `w2s run` started here that exited with an error: what it said, and where all of it is."""

    recipe: str
    returncode: int
    lines: list[str]
    log: Path


class W2SApp(App):
    TITLE = "w2s"
    CSS_PATH = "app.tcss"
    # each screen's module is imported when its mode is first shown (see screens/__init__.py)
    MODES = {
        "recipes": lambda: screens.RecipesScreen(),
        "runs": lambda: screens.RunsScreen(),
        "results": lambda: screens.ResultsScreen(),
        "history": lambda: screens.HistoryScreen(),
    }
    BINDINGS = [
        Binding("1", "switch_mode('recipes')", "Recipes", id="screen.recipes", group=SCREEN_KEYS),
        Binding("2", "switch_mode('runs')", "Runs", id="screen.runs", group=SCREEN_KEYS),
        Binding("3", "switch_mode('results')", "Results", id="screen.results", group=SCREEN_KEYS),
        Binding("4", "switch_mode('history')", "History", id="screen.history", group=SCREEN_KEYS),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, results_dir: str | Path, keymap: dict[str, str] | None = None, start: str | None = None):
        super().__init__()
        self.results_dir = Path(results_dir).expanduser().resolve()
        self.sub_title = self.where()
        self._user_keymap = keymap or {}
        self._start = start
        self.launches: list[tuple[subprocess.Popen, Path]] = []  # `w2s run`s started here, and their output
        self.launch_error: LaunchError | None = None  # the last failed launch, until dismissed
        self._exited: set[int] = set()
        self.run_watch = RunWatch()  # what ended since the last look: the bell and a toast (issue 13)
        self._watching = None  # the worker of the look under way

    def where(self, screen: str = "") -> str:
        """A header subtitle: the screen and the results folder open (~ for the home folder)."""
        home, folder = Path.home(), self.results_dir
        shown = (
            str(folder)
            if not folder.is_relative_to(home)
            else "~"
            if folder == home
            else f"~/{folder.relative_to(home)}"
        )
        return f"{screen} · {shown}" if screen else shown

    def on_mount(self) -> None:
        self.set_interval(1.0, self.check_launches)
        self.watch_runs()  # the first look only learns what already ended
        self.set_interval(WATCH_S, self.watch_runs)
        self.set_keymap(self._user_keymap)
        self.switch_mode(self._start or ("runs" if self.has_database() else "recipes"))

    def notify(self, message: str, *, markup: bool = True, **kwargs) -> None:  # noqa: ARG002
        """A toast, never parsed as markup: "[data]" in an error stays "[data]"."""
        super().notify(str(message), markup=False, **kwargs)

    def check_launches(self) -> None:
        """Say so when a `w2s run` started here exits with an error (a refused recipe, a locked store):
        a toast, and the output on the Recipes screen until dismissed."""
        for proc, log in self.launches:
            if proc.pid in self._exited or proc.poll() is None:
                continue
            self._exited.add(proc.pid)
            if proc.returncode != 0:
                lines = (
                    [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
                )
                recipe = str(proc.args[-1]) if isinstance(proc.args, list) else "?"
                self.launch_error = LaunchError(Path(recipe).name, proc.returncode, lines[-LAUNCH_LOG_LINES:], log)
                self.notify(
                    f"w2s run exited with {proc.returncode}: {lines[-1] if lines else ''} (full output: {log}; "
                    f"kept on Recipes, key 1)",
                    severity="error",
                    timeout=15,
                )
                if hasattr(self.screen, "show_launch_error"):  # the Recipes screen is showing
                    self.screen.show_launch_error()

    def watch_runs(self) -> None:
        """Look, off the UI thread, for runs that finished or failed and jobs that crashed since the last look."""
        if self._watching is not None and not self._watching.is_finished:
            return  # one look at a time: a cancelled look would lose what it found
        watch, reading = self.run_watch, self.reading

        def read():
            try:
                with reading() as store:
                    alerts = watch.look(store)
            except (W2SError, OSError):  # the screens say what is wrong with the database; no toast every look
                return
            if alerts:
                yield RunsEnded(alerts)

        self._watching = read_in_thread(self, read, group="run-watch")  # type: ignore[arg-type]  # the app posts too

    def on_runs_ended(self, message: RunsEnded) -> None:
        self.bell()
        for text, severity in message.alerts:
            self.notify(text, severity=severity, timeout=10)

    def has_database(self) -> bool:
        return (self.results_dir / DB_NAME).is_file()

    def open_store(self) -> Store | None:
        """A read-only store for the calling thread (an sqlite connection stays in the thread that
        opened it); None before the first run created the database."""
        return Store.open(self.results_dir, readonly=True) if self.has_database() else None

    @contextmanager
    def reading(self) -> Iterator[Store | None]:
        """`with app.reading() as store:` in a worker: the open store (closed after), or None."""
        store = self.open_store()
        if store is None:
            yield None
            return
        with store:
            yield store

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity)

    def on_read_failed(self, message: ReadFailed) -> None:
        self.notify(message.text, severity="error")

    def action_help(self) -> None:
        self.push_screen(screens.HelpScreen(self.help_rows(), str(DEFAULT_PATH)))

    def help_rows(self) -> list[HelpRow]:
        """Every binding of the app and its screens: where, its key after the keymap, action, id."""
        rows = []
        for cls in (type(self), *screens.screens_with_bindings()):
            where = "everywhere" if cls is type(self) else cls.__name__.removesuffix("Screen").lower()
            for b in cls.BINDINGS:
                rows.append((where, self.get_key_display(Binding(self.key_for(b), "")), b.description, b.id))
        return rows

    def key_for(self, binding: Binding) -> str:
        """The key a binding answers to after the user's keymap."""
        return self._keymap.get(binding.id, binding.key) if binding.id else binding.key

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands (less its Quit: ours is below), every binding active on `screen`,
        then those of the other main screens, which switch there first."""
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command
        seen = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.id or binding.id in seen or not binding.description:
                continue  # a widget's own keys (cursor up...) have no id: the table shows what they do
            seen.add(binding.id)
            yield SystemCommand(
                binding.description,
                f"key {self.key_for(binding)} · id {binding.id}",
                partial(self.run_action, binding.action, active.node),
            )
        for mode, name in MODE_SCREENS.items():
            cls = getattr(screens, name)
            if isinstance(screen, cls):
                continue
            for binding in cls.BINDINGS:
                if binding.id not in seen:
                    yield SystemCommand(
                        f"{mode.title()}: {binding.description}",
                        f"opens {mode} · key {self.key_for(binding)} · id {binding.id}",
                        partial(self.act_on, mode, binding.action),
                    )

    async def act_on(self, mode: str, action: str) -> None:
        """Switch to a main screen, then run one of its actions (a palette entry of another screen)."""
        await self.switch_mode(mode)
        await self.screen.run_action(action)


def binding_scopes() -> dict[str, list[Binding]]:
    """The bindings live on each screen (the app's are live on all): a key may mean one thing per scope."""
    return {
        cls.__name__.removesuffix("Screen").lower(): [*W2SApp.BINDINGS, *cls.BINDINGS]
        for cls in screens.screens_with_bindings()
    }


def known_binding_ids() -> set[str]:
    return {b.id for cls in (W2SApp, *screens.screens_with_bindings()) for b in cls.BINDINGS if b.id}


def __getattr__(name: str):
    if name == "SCREENS_WITH_BINDINGS":  # the screen classes, imported when first asked for
        return screens.screens_with_bindings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
