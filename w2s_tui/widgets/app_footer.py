"""The footer every screen shows: Textual's, with the app-wide keys (? help, q quit) first, so a
narrow terminal cuts a screen's own keys at the right edge, never those two."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not exported by Textual; the key widget its footer yields

APP_WIDE = ("help", "quit")  # binding actions kept in sight


class AppFooter(Footer):
    def __init__(self) -> None:
        super().__init__(compact=True)

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            for active in self.screen.active_bindings.values():
                b = active.binding
                if b.action in APP_WIDE and b.show:
                    yield FooterKey(
                        b.key,
                        self.app.get_key_display(b),
                        b.description,
                        b.action,
                        disabled=not active.enabled,
                        tooltip=active.tooltip or "",
                    ).data_bind(compact=Footer.compact)
        for widget in super().compose():
            if getattr(widget, "action", None) not in APP_WIDE:  # shown above; a key inside a group is kept
                yield widget
