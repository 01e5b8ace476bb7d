"""A searchable, lazily paged table of jobs: the base of the Runs and History screens.

Rows come from `w2s_core.store.queries.job_rows` in a thread worker, a page at a time: the first page is
on screen at once whatever the size of the database, and scrolling near the end fetches the next.
A refresh re-reads the loaded range and touches only the cells that changed.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from w2s_core.store import queries as browse
from w2s_core.errors import W2SError

PAGE = 200
PREFETCH = 30  # rows from the end at which the next page is fetched


class JobListScreen(Screen):
    COLUMNS: tuple[str, ...] = ()
    status_filter: str | None = None
    sort = "recent"

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict] = {}
        self.total = 0
        self.wanted = PAGE

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="search: model, method, recipe, dataset, hash (/ to focus, esc to leave)", id="search")
        yield Static(id="summary")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in self.COLUMNS:
            table.add_column(name, key=name)
        table.focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def cells(self, row: dict) -> tuple:
        raise NotImplementedError

    def current(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key)

    def reload(self) -> None:
        self.load(self.query_one("#search", Input).value, self.status_filter, self.sort, self.wanted)

    @work(thread=True, exclusive=True, group="job-list")
    def load(self, text: str, status: str | None, sort: str, limit: int) -> None:
        try:
            store = self.app.open_store()
            if store is None:
                rows, total = [], 0
            else:
                with store:
                    rows = browse.job_rows(store, text, status, sort, 0, limit)
                    total = browse.count_jobs(store, text, status)
        except W2SError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.show_rows, rows, total)

    def show_rows(self, rows: list[dict], total: int) -> None:
        """Update changed cells when the order held, else rebuild (keeping the cursor's job)."""
        table = self.query_one(DataTable)
        old = list(self.rows)
        new = [r["hash"] for r in rows]
        previous = self.rows
        self.rows = {r["hash"]: r for r in rows}
        self.total = total
        if new[: len(old)] == old:
            for row in rows[: len(old)]:
                if row == previous[row["hash"]] and row["status"] != "running":  # a running job's clock moves
                    continue
                before = self.cells(previous[row["hash"]])
                for column, value, was in zip(self.COLUMNS, self.cells(row), before):
                    if value != was:
                        table.update_cell(row["hash"], column, value)
            for row in rows[len(old):]:
                table.add_row(*self.cells(row), key=row["hash"])
        else:
            keep = self.current()
            table.clear()
            for row in rows:
                table.add_row(*self.cells(row), key=row["hash"])
            if keep and keep["hash"] in self.rows:
                table.move_cursor(row=new.index(keep["hash"]), animate=False)
        self.query_one("#summary", Static).update(self.summary())

    def summary(self) -> str:
        return f"{len(self.rows)} of {self.total} jobs"

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
        self.query_one(DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def key_escape(self) -> None:
        if self.query_one("#search", Input).has_focus:
            self.query_one(DataTable).focus()
