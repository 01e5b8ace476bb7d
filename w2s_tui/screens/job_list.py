"""A searchable, virtual list of jobs: the base of the Runs and History screens.

Rows come from `w2s_core.store.queries.job_rows` in a thread worker, one window at a time (see
widgets/job_table.py): the first window is on screen at once whatever the size of the database, and
a view nearing its edge loads the window around it.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Input, Static

from w2s_core.store import queries as browse

from ..messages import JobsLoaded
from ..widgets import AppFooter, Column, JobTable
from ..workers import read_in_thread

SEARCH_HINT = "search: model, role, method, recipe, dataset, hash (/ to focus, esc to leave)"


class JobListScreen(Screen):
    COLUMNS: tuple[Column, ...] = ()
    SCREEN_NAME = ""
    SEARCH_HINT = SEARCH_HINT  # the search box's placeholder: what the search matches
    status_filter: str | None = None
    sort = "recent"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0  # jobs matching the filter
        self.every = 0  # jobs in the database

    @property
    def rows(self) -> dict[str, dict]:
        """The loaded jobs by hash, in table order."""
        return self.query_one(JobTable).jobs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=self.SEARCH_HINT, id="search", compact=True)
        yield Static(id="summary")
        yield JobTable(self.COLUMNS, self.cells, id="jobs")
        yield AppFooter()

    def on_mount(self) -> None:
        self.sub_title = self.app.where(self.SCREEN_NAME)
        self.query_one(JobTable).focus()

    def on_screen_resume(self) -> None:  # also the first time the screen shows (after on_mount)
        self.reload()

    def cells(self, row: dict) -> tuple:
        raise NotImplementedError

    def count_text(self) -> str:
        """How many jobs: all of them, or how many of all the search and status filter keep."""
        filtered = self.query_one("#search", Input).value.strip() or self.status_filter
        return f"{self.total} of {self.every} jobs match" if filtered else f"{self.total} jobs"

    def summary(self) -> str:
        return self.count_text()

    def show_summary(self) -> None:
        self.query_one("#summary", Static).update(self.summary())

    def current(self) -> dict | None:
        return self.query_one(JobTable).current()

    def reload(self) -> None:
        """Read the table's window (again) under the current search, status filter and sort."""
        table = self.query_one(JobTable)
        text, status, sort = self.query_one("#search", Input).value, self.status_filter, self.sort
        (offset, limit), reading = table.wanted, self.app.reading

        def read():
            with reading() as store:
                if store is None:
                    yield JobsLoaded([], 0)
                    return
                rows = browse.job_rows(store, text, status, sort, offset, limit)
                total = browse.count_jobs(store, text, status)
                every = browse.count_jobs(store) if text.strip() or status else total
            yield JobsLoaded(rows, total, offset, every)

        read_in_thread(table, read, group="job-list", exclusive=True)

    def refilter(self) -> None:
        """The search, status filter or sort changed: back to the top, read again."""
        self.query_one(JobTable).reset()
        self.reload()

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        """After the table showed the rows (the message bubbles up from it)."""
        self.total, self.every = message.total, message.every
        self.show_summary()

    @on(JobTable.WindowWanted)
    def _window(self) -> None:
        self.reload()

    @on(Input.Changed, "#search")
    def _search(self) -> None:
        self.refilter()

    @on(Input.Submitted, "#search")
    def _leave_search(self) -> None:
        self.query_one(JobTable).focus()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def key_escape(self) -> None:
        if self.query_one("#search", Input).has_focus:
            self.query_one(JobTable).focus()
