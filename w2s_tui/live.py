"""The live view of one job: loss and α warm-up, train/test accuracy, and the tail of its log.

A timer starts at most one thread worker at a time, which reads only the metric rows after the
last sequence number shown and the end of log.txt; the UI thread then redraws once. So a job
emitting hundreds of events a second costs one query and one redraw per tick, never a backlog.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static
from textual_plotext import PlotextPlot

from w2s_core.store import queries as browse
from w2s_core.errors import W2SError

from . import fmt

TICK_S = 0.5
LOG_BYTES = 8192
MAX_POINTS = 400  # per curve drawn; a terminal plot has fewer columns than that anyway
CURVES = {"loss": ("loss", "alpha"), "accuracy": ("train_acc", "test_acc")}


def thin(points: list[tuple[int, float]], most: int = MAX_POINTS) -> list[tuple[int, float]]:
    """Every k-th point and the last, so a redraw costs the same at step 100 and at step 100,000."""
    if len(points) <= most:
        return points
    k = -(-len(points) // most)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def log_tail(path: Path, lines: int = 50) -> list[str]:
    """The last lines of a log without reading all of it."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - LOG_BYTES))
            return f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class LiveScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="live.back")]

    def __init__(self, job_hash: str) -> None:
        super().__init__()
        self.job_hash = job_hash
        self.series: dict[str, list[tuple[int, float]]] = {k: [] for keys in CURVES.values() for k in keys}
        self.last_seq = -1
        self.polling = False
        self.log_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="job-info")
        with Horizontal(id="plots"):
            yield PlotextPlot(id="plot-loss")
            yield PlotextPlot(id="plot-accuracy")
        yield Log(id="log", max_lines=200)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"job {self.job_hash[:10]}"
        self.poll()
        self.set_interval(TICK_S, self.poll)

    def poll(self) -> None:
        if not self.polling:
            self.polling = True
            self.read(self.last_seq)

    @work(thread=True, group="live")
    def read(self, since: int) -> None:
        try:
            store = self.app.open_store()
            if store is None:
                raise W2SError(f"no results database in {self.app.results_dir}")
            with store:
                rows = browse.job_rows(store, self.job_hash, limit=1)
                keys = tuple(k for ks in CURVES.values() for k in ks)
                series, last = browse.metric_series(store, self.job_hash, keys, since)
        except W2SError as exc:
            self.app.call_from_thread(self.failed, str(exc))
            return
        job = rows[0] if rows else None
        lines = log_tail(self.app.results_dir / job["dir"] / "log.txt") if job and job["dir"] else []
        self.app.call_from_thread(self.apply, since, job, series, last, lines)

    def failed(self, message: str) -> None:
        self.polling = False
        self.query_one("#job-info", Static).update(f"[red]{message}[/red]")

    def apply(self, since: int, job: dict | None, series: dict, last: int, lines: list[str]) -> None:
        self.polling = False
        if since != self.last_seq:
            return
        self.last_seq = last
        for key, points in series.items():
            self.series[key].extend(points)
        info = self.query_one("#job-info", Static)
        if job is None:
            info.update(f"[red]no job {self.job_hash[:10]} in the database[/red]")
            return
        p = fmt.progress(job)
        info.update(f"[b]{job['model']}[/b] · {fmt.role(job)} · seed {job['seed']} · [b]{job['status']}[/b] · "
                    f"{p['progress']} · ETA {p['eta']} · elapsed {p['elapsed']} · {p['speed']} ex/s · "
                    f"test acc {fmt.num(job['final_acc'] if job['final_acc'] is not None else job['last_test_acc'])}")
        if series:
            self.draw()
        if lines != self.log_lines:
            self.log_lines = lines
            log = self.query_one(Log)
            log.clear()
            log.write_lines(lines)

    def draw(self) -> None:
        for name, keys in CURVES.items():
            widget = self.query_one(f"#plot-{name}", PlotextPlot)
            plt = widget.plt
            plt.clear_data()
            plt.title(name if name != "loss" or not self.series["alpha"] else "loss and α")
            for key in keys:
                points = thin(self.series[key])
                if points:
                    plt.plot([p[0] for p in points], [p[1] for p in points], label=key)
            widget.refresh()
