"""History: every job ever recorded, searchable; mark two or more to overlay their curves; export.

Export writes the whole filtered table (not only the loaded pages) to CSV or JSON in
RESULTS_DIR/exports/, so a search can be handed to a notebook.
"""

from __future__ import annotations

import csv
import json
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from w2s_core.store import queries as browse
from w2s_core.errors import W2SError

from . import fmt
from .job_list import JobListScreen
from .live import thin
from .runs import status_text

EXPORT_FIELDS = ("hash", "recipe", "dataset", "kind", "model", "weak_model", "loss", "seed", "status",
                 "final_acc", "started_at", "finished_at")
COMPARE_KEYS = ("test_acc", "loss", "train_acc", "test_auroc")


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

    def on_mount(self) -> None:
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
        self.query_one(DataTable).update_cell(job["hash"], "✓", self.cells(job)[0])
        self.query_one("#summary", Static).update(self.summary())

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more jobs with space to compare their curves", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked.values())))

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        from .live import LiveScreen

        job = self.current()
        if job:
            self.app.push_screen(LiveScreen(job["hash"]))

    def action_export(self, kind: str) -> None:
        self.export(kind, self.query_one("#search").value)

    @work(thread=True, group="export")
    def export(self, kind: str, text: str) -> None:
        try:
            store = self.app.open_store()
            rows = []
            if store is not None:
                with store:
                    rows = browse.job_rows(store, text, limit=browse.count_jobs(store, text) or 1)
            out_dir = self.app.results_dir / "exports"
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"history-{time.strftime('%Y%m%d-%H%M%S')}.{kind}"
            flat = [{k: r[k] for k in EXPORT_FIELDS} for r in rows]
            with open(path, "w", newline="") as f:
                if kind == "csv":
                    writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
                    writer.writeheader()
                    writer.writerows(flat)
                else:
                    json.dump(flat, f, indent=1)
        except (W2SError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported {len(flat)} jobs to {path}")


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
        yield PlotextPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Compare"
        self.load()

    def action_next_key(self) -> None:
        self.key = COMPARE_KEYS[(COMPARE_KEYS.index(self.key) + 1) % len(COMPARE_KEYS)]
        self.draw()

    @work(thread=True, group="compare")
    def load(self) -> None:
        try:
            store = self.app.open_store()
            with store:
                series = {j["hash"]: browse.metric_series(store, j["hash"], COMPARE_KEYS)[0] for j in self.jobs}
        except W2SError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.loaded, series)

    def loaded(self, series: dict) -> None:
        self.series = series
        self.draw()

    def draw(self) -> None:
        widget = self.query_one(PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.title(self.key)
        empty = []
        for job in self.jobs:
            points = thin(self.series.get(job["hash"], {}).get(self.key, []))
            label = f"{job['model']} {fmt.role(job)} s{job['seed']} {job['hash'][:6]}"
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], label=label)
            else:
                empty.append(label)
        widget.refresh()
        note = f" · no {self.key} for: {', '.join(empty)}" if empty else ""
        self.query_one("#compare-title", Static).update(f"{len(self.jobs)} jobs · {self.key} (k: next metric){note}")
