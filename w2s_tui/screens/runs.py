"""Runs: every job with its status, role, last loss, progress, ETA and speed; filter, sort, cancel, open.
Below the table, the GPU panel: each GPU's utilisation, memory, temperature and power, and its w2s jobs."""

from __future__ import annotations

import time

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding

from w2s_core.errors import W2SError
from w2s_core.status import ACTIVE, JobStatus
from w2s_core.store import queries as browse

from .. import control, fmt
from ..messages import Notice
from ..widgets import AppFooter, Column, GpuPanel, JobTable, slurm_text, status_text
from ..workers import read_in_thread
from .job_list import JobListScreen

STATUS_FILTERS = (
    None,
    JobStatus.RUNNING,
    JobStatus.QUEUED,
    JobStatus.DONE,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.SKIPPED,
)
REFRESH_S = 1.0
QUIET_S = 0.5  # no refresh while the cursor moved this recently: a read would compete with the keys
CONFIRM_S = 3.0


class RunsScreen(JobListScreen):
    SCREEN_NAME = "Runs"
    # status, model, role and recipe stay on any terminal; the rest go right to left by `drop`
    COLUMNS = (
        Column("status"),
        Column("model"),
        Column("role"),
        Column("last loss", 4, right=True),
        Column("seed", 5, right=True),
        Column("progress", 1, right=True),
        Column("ETA", 2, right=True),
        Column("elapsed", 3, right=True),
        Column("ex/s", 6, right=True),
        Column("recipe"),
        Column("job", 7),
    )
    BINDINGS = [
        Binding("slash", "search", "Filter", id="runs.filter"),
        Binding("f", "cycle_status", "Status filter", id="runs.status"),
        Binding("s", "cycle_sort", "Sort", id="runs.sort"),
        Binding("c", "cancel_job", "Cancel job", id="runs.cancel"),
        Binding("enter", "open_job", "Live view", id="runs.open"),
    ]
    armed: str | None = None  # the job a first cancel press picked
    armed_at = 0.0

    def compose(self) -> ComposeResult:
        """The job list's widgets, with the GPU panel between the table and the footer."""
        for widget in super().compose():
            if isinstance(widget, AppFooter):
                yield GpuPanel(id="gpu-panel")
            yield widget

    def on_mount(self) -> None:  # Textual also runs JobListScreen.on_mount (handlers run along the MRO)
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        if self.is_current and time.monotonic() - self.query_one(JobTable).moved_at >= QUIET_S:
            self.reload()

    def cells(self, row: dict) -> tuple:
        p = fmt.progress(row)
        return (
            status_text(row["status"], row.get("wait_reason"), slurm_text(row)),
            row["model"],
            fmt.role(row),
            fmt.num(row["last_loss"]),
            str(row["seed"]),
            p["progress"],
            p["eta"],
            p["elapsed"],
            p["speed"],
            row["recipe"] or "-",
            row["hash"][:10],
        )

    def summary(self) -> str:
        status = self.status_filter or "any status"
        return f"{self.count_text()} · {status} (f) · sorted by {self.sort} (s)"

    def action_cycle_status(self) -> None:
        self.status_filter = STATUS_FILTERS[(STATUS_FILTERS.index(self.status_filter) + 1) % len(STATUS_FILTERS)]
        self.refilter()

    def action_cycle_sort(self) -> None:
        sorts = list(browse.SORTS)
        self.sort = sorts[(sorts.index(self.sort) + 1) % len(sorts)]
        self.refilter()

    def action_open_job(self) -> None:
        job = self.current()
        if job:
            from .live import LiveScreen  # its plotting library is off the first screen's start-up path

            self.app.push_screen(LiveScreen(job["hash"]))

    @on(JobTable.Selected)
    def _selected(self) -> None:
        self.action_open_job()

    def action_cancel_job(self) -> None:
        """Cancel on a second press within CONFIRM_S, so one stray key never kills hours of training;
        a job that is not queued or running is refused at the first press."""
        job = self.current()
        if job is None:
            return
        if job["status"] not in ACTIVE:
            self.notify(
                f"{job['hash'][:10]} is {job['status']}: only queued or running jobs can be cancelled",
                severity="warning",
            )
            return
        now = time.time()
        if self.armed == job["hash"] and now - self.armed_at <= CONFIRM_S:
            self.armed = None
            self.cancel(job)
            return
        self.armed, self.armed_at = job["hash"], now
        self.notify(f"press again to cancel {job['model']} {fmt.role(job)} ({job['hash'][:10]})", timeout=CONFIRM_S)

    def cancel(self, job: dict) -> None:
        results_dir = self.app.results_dir

        def read():
            try:
                yield Notice(control.cancel(job, results_dir))
            except W2SError as exc:
                yield Notice(str(exc), "warning")

        read_in_thread(self, read, group="cancel")
