"""The help screen: every binding of every screen, with its current key and its id for keymaps.

The app hands it the rows (it knows the screens and the user's keymap), so this module imports no
other part of the app.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

HelpRow = tuple[str, str, str, str]  # where, key (as displayed), action, binding id


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss", "Close help", id="help.close")]

    def __init__(self, rows: list[HelpRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[b]Keys[/b]  (remap with a keymap file: [i]binding id = \"key\"[/i]; "
                         "ctrl+p searches every action)")
            yield DataTable(id="help-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "action", "id")
        table.add_rows(self.rows)
