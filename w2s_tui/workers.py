"""The one way the TUI reads off the UI thread: a reader runs in a thread worker and yields Messages.

Store queries and file reads block, so they never run on the UI thread. A screen hands
`read_in_thread` a widget (itself, or the table that shows the rows) and a generator function that
captured what it needs (`app.reading`, the search text) on the UI thread. Every Message the reader
yields is posted to that widget and bubbles on to the screen and the app; a W2SError or OSError it
raises becomes a `ReadFailed`. Messages of a worker cancelled meanwhile (an exclusive worker is
cancelled when a newer one of its group starts) are dropped, so a stale page never lands on a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, get_current_worker

from w2s_core.errors import W2SError

from .messages import ReadFailed

Reader = Callable[[], Iterator[Message]]


def read_in_thread(node: Widget, read: Reader, *, group: str, exclusive: bool = False) -> Worker:
    """Run `read` in a thread worker of `group`, posting what it yields to `node` (see the module doc)."""

    def body() -> None:
        worker = get_current_worker()
        try:
            for message in read():
                if worker.is_cancelled:
                    return
                # The sender is the node itself: a message must not look as if its parent sent it, or
                # it would stop bubbling before reaching the app.
                node.post_message(message.set_sender(node))
        except (W2SError, OSError) as exc:
            if not worker.is_cancelled:
                node.post_message(ReadFailed(str(exc)).set_sender(node))

    return node.run_worker(body, name=group, group=group, exclusive=exclusive, thread=True)
