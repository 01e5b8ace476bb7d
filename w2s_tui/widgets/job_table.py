"""The job table of the Runs and History screens: one row per job, keyed by its hash.

A refresh re-reads the loaded range; when the order held, only the cells that changed are touched,
so a table of thousands of rows refreshes every second without flicker or a lost cursor.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import DataTable

from w2s_core.status import JobStatus

from ..messages import JobsLoaded

STATUS_STYLE = {JobStatus.QUEUED: "cyan", JobStatus.RUNNING: "bold yellow", JobStatus.DONE: "green",
                JobStatus.FAILED: "bold red", JobStatus.CANCELLED: "magenta", JobStatus.SKIPPED: "dim",
                JobStatus.PLANNED: "dim"}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class JobTable(DataTable):
    """Rows from `w2s_core.store.queries.job_rows`; `cells(row)` gives the cells of one, in column order.

    Workers post JobsLoaded to the table itself (then it bubbles to the screen): handled in the
    table's own task, the rows are added and the column widths measured (on the table's idle) before
    the screen paints again, so the header is never drawn with the old widths.
    """

    DEFAULT_CSS = "JobTable { height: 1fr; }"

    def __init__(self, columns: tuple[str, ...], cells: Callable[[dict], tuple], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.column_names = columns
        self.cells = cells
        self.jobs: dict[str, dict] = {}  # hash -> row, in table order

    def on_mount(self) -> None:
        for name in self.column_names:
            self.add_column(name, key=name)

    def current(self) -> dict | None:
        """The job under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.jobs.get(key)

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        self.show(message.rows)

    def show(self, rows: list[dict]) -> None:
        """Update changed cells when the order held, else rebuild (keeping the cursor's job)."""
        old = list(self.jobs)
        new = [r["hash"] for r in rows]
        previous = self.jobs
        self.jobs = {r["hash"]: r for r in rows}
        if new[: len(old)] == old:
            for row in rows[: len(old)]:
                # a running job's elapsed clock moves even when its row did not change
                if row == previous[row["hash"]] and row["status"] != JobStatus.RUNNING:
                    continue
                for column, value, was in zip(self.column_names, self.cells(row), self.cells(previous[row["hash"]])):
                    if value != was:
                        self.update_cell(row["hash"], column, value)
            for row in rows[len(old):]:
                self.add_row(*self.cells(row), key=row["hash"])
            return
        keep = self.current()
        self.clear()
        for row in rows:
            self.add_row(*self.cells(row), key=row["hash"])
        if keep and keep["hash"] in self.jobs:
            self.move_cursor(row=new.index(keep["hash"]), animate=False)

    def redraw(self, job_hash: str) -> None:
        """Redraw one row whose cells changed without a reload (a History mark)."""
        for column, value in zip(self.column_names, self.cells(self.jobs[job_hash])):
            self.update_cell(job_hash, column, value)
