"""History: every job ever recorded, searchable; mark two or more to overlay their curves; export.

Export writes the whole filtered table (not only the loaded pages) to CSV or JSON in
RESULTS_DIR/exports/, so a search can be handed to a notebook.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from w2s_core.errors import W2SError
from w2s_core.jobdir import Event
from w2s_core.store import queries as browse

from .. import fmt
from ..messages import Notice, SeriesLoaded
from ..widgets import CurvePlot, JobTable, status_text
from ..workers import read_in_thread
from .job_list import JobListScreen
from .live import LiveScreen

EXPORT_FIELDS = ("hash", "recipe", "dataset", "kind", "model", "weak_model", "loss", "seed", "status",
                 "final_acc", "started_at", "finished_at")
COMPARE_KEYS = (Event.TEST_ACC, Event.LOSS, Event.TRAIN_ACC, Event.TEST_AUROC)


def write_export(path: Path, kind: str, rows: list[dict]) -> int:
    """The rows' EXPORT_FIELDS as CSV or JSON; returns how many rows were written."""
    flat = [{k: r[k] for k in EXPORT_FIELDS} for r in rows]
    with open(path, "w", newline="") as f:
        if kind == "csv":
            writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
            writer.writeheader()
            writer.writerows(flat)
        else:
            json.dump(flat, f, indent=1)
    return len(flat)


class HistoryScreen(JobListScreen):
    COLUMNS = ("✓", "recipe", "dataset", "role", "model", "seed", "status", "test acc", "started", "job")
    BINDINGS = [
        Binding("slash", "search", "Search", id="history.search"),
        Binding("space", "toggle_mark", "Mark", id="history.mark"),
        Binding("c", "compare", "Compare marked", id="history.compare"),
        Binding("e", "export('csv')", "Export CSV", id="history.export_csv"),
        Binding("j", "export('json')", "Export JSON", id="history.export_json"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: dict[str, dict] = {}

    def on_mount(self) -> None:  # Textual also runs JobListScreen.on_mount (handlers run along the MRO)
        self.sub_title = "History"

    def cells(self, row: dict) -> tuple:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started_at"])) if row["started_at"] else "-"
        return ("●" if row["hash"] in self.marked else " ", row["recipe"] or "-", row["dataset"] or "-", fmt.role(row),
                row["model"], str(row["seed"]), status_text(row["status"]), fmt.num(row["final_acc"]), started,
                row["hash"][:10])

    def summary(self) -> str:
        return f"{len(self.rows)} of {self.total} jobs · {len(self.marked)} marked (space) · c: compare · e/j: export"

    def action_toggle_mark(self) -> None:
        job = self.current()
        if job is None:
            return
        if self.marked.pop(job["hash"], None) is None:
            self.marked[job["hash"]] = job
        self.query_one(JobTable).redraw(job["hash"])
        self.query_one("#summary", Static).update(self.summary())

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more jobs with space to compare their curves", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked.values())))

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        job = self.current()
        if job:
            self.app.push_screen(LiveScreen(job["hash"]))

    def action_export(self, kind: str) -> None:
        text, out_dir, reading = self.query_one("#search").value, self.app.results_dir / "exports", self.app.reading

        def read():
            try:
                with reading() as store:
                    rows = browse.job_rows(store, text, limit=browse.count_jobs(store, text) or 1) if store else []
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"history-{time.strftime('%Y%m%d-%H%M%S')}.{kind}"
                n = write_export(path, kind, rows)
            except (W2SError, OSError) as exc:
                yield Notice(f"export failed: {exc}", "error")
                return
            yield Notice(f"exported {n} jobs to {path}")

        read_in_thread(self, read, group="export")


class CompareScreen(Screen):
    """The marked jobs' curves of one metric, overlaid."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("k", "next_key", "Next metric", id="compare.metric"),
    ]

    def __init__(self, jobs: list[dict]) -> None:
        super().__init__()
        self.jobs = jobs
        self.key = COMPARE_KEYS[0]
        self.series: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-title")
        yield CurvePlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Compare"
        hashes, reading, results_dir = [j["hash"] for j in self.jobs], self.app.reading, self.app.results_dir

        def read():
            with reading() as store:
                if store is None:
                    raise W2SError(f"no results database in {results_dir}")
                yield SeriesLoaded({h: browse.metric_series(store, h, COMPARE_KEYS)[0] for h in hashes})

        read_in_thread(self, read, group="compare")

    def action_next_key(self) -> None:
        self.key = COMPARE_KEYS[(COMPARE_KEYS.index(self.key) + 1) % len(COMPARE_KEYS)]
        self.draw()

    def on_series_loaded(self, message: SeriesLoaded) -> None:
        self.series = message.series
        self.draw()

    def draw(self) -> None:
        curves = {f"{j['model']} {fmt.role(j)} s{j['seed']} {j['hash'][:6]}": self.series.get(j["hash"], {}).get(self.key, [])
                  for j in self.jobs}
        empty = self.query_one(CurvePlot).plot(self.key, curves)
        note = f" · no {self.key} for: {', '.join(empty)}" if empty else ""
        self.query_one("#compare-title", Static).update(f"{len(self.jobs)} jobs · {self.key} (k: next metric){note}")
