"""The help screen: every binding of every screen, with its current key and its id for keymaps."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss", "Close help", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[b]Keys[/b]  (remap with a keymap file: [i]binding id = \"key\"[/i]; "
                         "ctrl+p searches every action)")
            yield DataTable(id="help-table", cursor_type="row")

    def on_mount(self) -> None:
        from .app import SCREENS_WITH_BINDINGS

        table = self.query_one(DataTable)
        table.add_columns("where", "key", "action", "id")
        for cls in (type(self.app), *SCREENS_WITH_BINDINGS):
            where = "everywhere" if cls is type(self.app) else cls.__name__.removesuffix("Screen").lower()
            for b in cls.BINDINGS:
                table.add_row(where, self.app.get_key_display(Binding(self.app.key_for(b), "")), b.description, b.id)
