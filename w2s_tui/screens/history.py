"""History: every job ever recorded, searchable; mark two or more to overlay their curves; export.
Each job's peak GPU memory and mean GPU utilisation are shown once the supervisor sampled it on a GPU
(blank for a job never sampled: a CPU job, or one from before GPU sampling).

The tags column shows the tags `w2s tag` put on the job, its run or its recipe. The search takes a
word `tag:NAME` to keep only the jobs carrying NAME (with other words: jobs matching all of them), so
`tag:paper gpt2` is the paper's gpt2 jobs; one search box filters both ways, as everywhere else.

Export writes the marked jobs, or when none is marked the whole filtered table (not only the loaded
window), to CSV or JSON in RESULTS_DIR/exports/, so a search can be handed to a notebook; the summary
line keeps the path of the last export.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, Static

from w2s_core.errors import W2SError
from w2s_core.jobdir import Event
from w2s_core.store import queries as browse

from .. import fmt
from ..messages import Exported, Notice, SeriesLoaded
from ..widgets import AppFooter, Column, CurvePlot, JobTable, slurm_text, status_text, training_fraction
from ..workers import read_in_thread
from .job_list import JobListScreen

EXPORT_FIELDS = (
    "hash",
    "recipe",
    "dataset",
    "kind",
    "model",
    "weak_model",
    "loss",
    "seed",
    "status",
    "final_acc",
    "started_at",
    "finished_at",
    "gpu_peak_mb",
    "gpu_util_mean",
    "tags",
)
HISTORY_HINT = "search: model, role, method, recipe, dataset, hash, tag:NAME (/ to focus, esc to leave)"
COMPARE_KEYS = (Event.TEST_ACC, Event.VAL_ACC, Event.LOSS, Event.TRAIN_ACC, Event.TEST_AUROC)


def write_export(path: Path, kind: str, rows: list[dict]) -> int:
    """The rows' EXPORT_FIELDS as CSV or JSON; returns how many rows were written."""
    flat = [{k: " ".join(r.get(k) or []) if k == "tags" else r[k] for k in EXPORT_FIELDS} for r in rows]
    with open(path, "w", newline="") as f:
        if kind == "csv":
            writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
            writer.writeheader()
            writer.writerows(flat)
        else:
            json.dump(flat, f, indent=1)
    return len(flat)


class HistoryScreen(JobListScreen):
    SCREEN_NAME = "History"
    SEARCH_HINT = HISTORY_HINT
    # the mark, role, model, status and a readable start time stay on any terminal
    COLUMNS = (
        Column("✓"),
        Column("recipe", 3),
        Column("dataset", 5),
        Column("role"),
        Column("model"),
        Column("seed", 6, right=True),
        Column("status"),
        Column("test acc", 2, right=True),
        Column("tags", 4),
        Column("GPU peak", 8, right=True),
        Column("GPU util", 9, right=True),
        Column("started"),
        Column("job", 7),
    )
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
        self.last_export = ""

    def cells(self, row: dict) -> tuple:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started_at"])) if row["started_at"] else "-"
        return (
            "●" if row["hash"] in self.marked else " ",
            row["recipe"] or "-",
            row["dataset"] or "-",
            fmt.role(row),
            row["model"],
            str(row["seed"]),
            status_text(row["status"], slurm=slurm_text(row)),
            fmt.num(row["final_acc"]),
            " ".join(row.get("tags") or []),
            "" if row.get("gpu_peak_mb") is None else f"{row['gpu_peak_mb'] / 1024:.1f} GiB",
            "" if row.get("gpu_util_mean") is None else f"{row['gpu_util_mean']:.0f}%",
            started,
            row["hash"][:10],
        )

    def summary(self) -> str:
        export = "the marked" if self.marked else "all shown"
        line = f"{self.count_text()} · {len(self.marked)} marked (space) · c: compare · e/j: export {export}"
        return line + (f"\n{self.last_export}" if self.last_export else "")

    def action_toggle_mark(self) -> None:
        job = self.current()
        if job is None:
            return
        if self.marked.pop(job["hash"], None) is None:
            self.marked[job["hash"]] = job
        self.query_one(JobTable).redraw(job["hash"])
        self.show_summary()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more jobs with space to compare their curves", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked.values())))

    @on(JobTable.Selected)
    def _selected(self, event: JobTable.Selected) -> None:
        from .live import LiveScreen  # as the Runs screen does: imported when first opened

        self.app.push_screen(LiveScreen(event.job["hash"]))

    def action_export(self, kind: str) -> None:
        """The marked jobs, or every job the search keeps, to RESULTS_DIR/exports/."""
        text, out_dir, reading = self.query_one("#search").value, self.app.results_dir / "exports", self.app.reading
        marked = list(self.marked.values())

        def read():
            try:
                if marked:
                    rows = marked
                else:
                    with reading() as store:
                        rows = browse.job_rows(store, text, limit=browse.count_jobs(store, text) or 1) if store else []
                out_dir.mkdir(parents=True, exist_ok=True)
                path = out_dir / f"history-{time.strftime('%Y%m%d-%H%M%S')}.{kind}"
                n = write_export(path, kind, rows)
            except (W2SError, OSError) as exc:
                yield Notice(f"export failed: {exc}", "error")
                return
            yield Exported(path, n)

        read_in_thread(self, read, group="export")

    def on_exported(self, message: Exported) -> None:
        self.last_export = f"exported {message.count} jobs to {message.path}"
        self.show_summary()
        self.notify(self.last_export)


class CompareScreen(Screen):
    """The marked jobs' curves of one metric, overlaid on one axis: the fraction of training done,
    so a short run and a long one line up; each legend names the recipe, model, role and seed."""

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
        yield AppFooter()

    def on_mount(self) -> None:
        self.sub_title = self.app.where("Compare")
        hashes, reading, results_dir = [j["hash"] for j in self.jobs], self.app.reading, self.app.results_dir

        def read():
            with reading() as store:
                if store is None:
                    raise W2SError(f"no results database in {results_dir}")
                yield SeriesLoaded(
                    {h: browse.metric_series(store, h, (*COMPARE_KEYS, Event.EXAMPLES))[0] for h in hashes}
                )

        read_in_thread(self, read, group="compare")

    def keys(self) -> tuple[str, ...]:
        """The metrics some marked job has (all of them before the curves are read)."""
        found = tuple(k for k in COMPARE_KEYS if any(s.get(k) for s in self.series.values()))
        return found or COMPARE_KEYS

    def action_next_key(self) -> None:
        keys = self.keys()
        self.key = keys[(keys.index(self.key) + 1) % len(keys)] if self.key in keys else keys[0]
        self.draw()

    def on_series_loaded(self, message: SeriesLoaded) -> None:
        self.series = message.series
        if self.key not in self.keys():
            self.key = self.keys()[0]
        self.draw()

    def label(self, job: dict) -> str:
        return f"{job['recipe'] or '-'} · {job['model']} {fmt.role(job)} s{job['seed']} {job['hash'][:6]}"

    def draw(self) -> None:
        curves = {}
        for job in self.jobs:
            series = self.series.get(job["hash"], {})
            curves[self.label(job)] = training_fraction(series.get(self.key, []), series, job.get("total_examples"))
        empty = self.query_one(CurvePlot).plot(self.key, curves, xlabel="fraction of training")
        note = f" · no {self.key} for: {', '.join(empty)}" if empty else ""
        self.query_one("#compare-title", Static).update(
            Text(f"{len(self.jobs)} jobs · {self.key} (k: next metric){note}")
        )
