"""The help screen: every binding of every screen, with its current key and its id for keymaps.

The app hands it the rows (it knows the screens and the user's keymap) and the keymap file's path,
so this module imports no other part of the app.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

HelpRow = tuple[str, str, str, str]  # where, key (as displayed), action, binding id


def intro(keymap_path: str) -> Text:
    """What the keys are, how to move them, what ctrl+p covers and where exports go (no markup:
    the `[keymap]` table name must show as written)."""
    return Text.assemble(
        ("Keys", "bold"),
        "  (esc closes)\n",
        "Move a key in a keymap file, ",
        (keymap_path, "italic"),
        " (or --keymap FILE, or $W2S_KEYMAP): a ",
        ("[keymap]", "bold"),
        ' table of binding id = "key", e.g. "runs.cancel" = "x". A key that two '
        "bindings of one screen would share is refused.\n",
        ("ctrl+p", "bold"),
        " searches every action below: those of the main screens (1-4) from anywhere "
        "(it switches there first); those of the live, compare and help views while they are open.\n",
        ("e", "bold"),
        "/",
        ("j", "bold"),
        " on History export the marked jobs (or all shown) to RESULTS_DIR/exports/ as CSV/JSON.",
    )


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss", "Close help", id="help.close")]

    def __init__(self, rows: list[HelpRow], keymap_path: str = "~/.config/w2s/keymap.toml") -> None:
        super().__init__()
        self.rows = rows
        self.keymap_path = keymap_path

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(intro(self.keymap_path), id="help-intro")
            yield DataTable(id="help-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "action", "id")
        table.add_rows([tuple(Text(cell) for cell in row) for row in self.rows])
