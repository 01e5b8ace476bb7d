"""A searchable, lazily paged list of jobs: the base of the Runs and History screens.

Rows come from `w2s_core.store.queries.job_rows` in a thread worker, a page at a time: the first page
is on screen at once whatever the size of the database, and scrolling near the end fetches the next.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from w2s_core.store import queries as browse

from ..messages import JobsLoaded
from ..widgets import JobTable
from ..workers import read_in_thread

PAGE = 200
PREFETCH = 30  # rows from the end at which the next page is fetched


class JobListScreen(Screen):
    COLUMNS: tuple[str, ...] = ()
    status_filter: str | None = None
    sort = "recent"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.wanted = PAGE

    @property
    def rows(self) -> dict[str, dict]:
        """The loaded jobs by hash, in table order."""
        return self.query_one(JobTable).jobs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="search: model, method, recipe, dataset, hash (/ to focus, esc to leave)", id="search")
        yield Static(id="summary")
        yield JobTable(self.COLUMNS, self.cells, id="jobs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(JobTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def cells(self, row: dict) -> tuple:
        raise NotImplementedError

    def summary(self) -> str:
        return f"{len(self.rows)} of {self.total} jobs"

    def current(self) -> dict | None:
        return self.query_one(JobTable).current()

    def reload(self) -> None:
        text, status, sort, limit = self.query_one("#search", Input).value, self.status_filter, self.sort, self.wanted
        reading = self.app.reading

        def read():
            with reading() as store:
                if store is None:
                    yield JobsLoaded([], 0)
                    return
                rows = browse.job_rows(store, text, status, sort, 0, limit)
                total = browse.count_jobs(store, text, status)
            yield JobsLoaded(rows, total)

        read_in_thread(self.query_one(JobTable), read, group="job-list", exclusive=True)

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        """After the table showed the rows (the message bubbles up from it)."""
        self.total = message.total
        self.query_one("#summary", Static).update(self.summary())

    @on(DataTable.RowHighlighted)
    def _prefetch(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= len(self.rows) - PREFETCH and len(self.rows) < self.total and self.wanted <= len(self.rows):
            self.wanted = len(self.rows) + PAGE
            self.reload()

    @on(Input.Changed, "#search")
    def _search(self) -> None:
        self.wanted = PAGE
        self.reload()

    @on(Input.Submitted, "#search")
    def _leave_search(self) -> None:
        self.query_one(JobTable).focus()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def key_escape(self) -> None:
        if self.query_one("#search", Input).has_focus:
            self.query_one(JobTable).focus()
