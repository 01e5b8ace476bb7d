"""The live view of one job: loss and α warm-up, train/test/validation accuracy, the tail of its log, and
the GPU panel (its GPUs, the job's own memory highlighted; its peak GPU memory and mean utilisation on the
info line once sampled). A failed or cancelled job's error is shown whole; a plot without points says "no data".

A timer starts at most one thread worker at a time, which reads only the metric rows after the
last sequence number shown and the end of the job's log; the UI thread then redraws once. So a job
emitting hundreds of events a second costs one query and one redraw per tick, never a backlog.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Header, Log, Static

from w2s_core.errors import W2SError
from w2s_core.jobdir import Event, JobDir, tail_lines
from w2s_core.store import queries as browse

from .. import fmt
from ..messages import JobEvents, LogTail, ReadFailed
from ..widgets import AppFooter, CurvePlot, GpuPanel, slurm_text
from ..workers import read_in_thread

TICK_S = 0.5
LOG_LINES = 50
LOG_BYTES = 8192  # the end of the log read each tick: enough for LOG_LINES lines
# validation accuracy is there when the recipe holds out `[train] val_size` (issue 9)
CURVES = {"loss": (Event.LOSS, Event.ALPHA), "accuracy": (Event.TRAIN_ACC, Event.TEST_ACC, Event.VAL_ACC)}
KEYS = tuple(k for keys in CURVES.values() for k in keys)


def gpu_use(job: dict) -> str:
    """' · GPU peak 12.3 GiB, util 87%' once the supervisor sampled the job on a GPU, else ''."""
    if job.get("gpu_peak_mb") is None:
        return ""
    util = job.get("gpu_util_mean")
    return f" · GPU peak {job['gpu_peak_mb'] / 1024:.1f} GiB" + ("" if util is None else f", util {util:.0f}%")


class LiveScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="live.back")]

    def __init__(self, job_hash: str) -> None:
        super().__init__()
        self.job_hash = job_hash
        self.series: dict[str, list[tuple[int, float]]] = {k: [] for k in KEYS}
        self.last_seq = -1
        self.polling = False
        self.log_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="job-info")
        yield Static(id="job-error")
        with Horizontal(id="plots"):
            yield CurvePlot(id="plot-loss")
            yield CurvePlot(id="plot-accuracy")
        yield Log(id="log", max_lines=200)
        yield GpuPanel(self.job_hash, id="gpu-panel")
        yield AppFooter()

    def on_mount(self) -> None:
        self.sub_title = self.app.where(f"job {self.job_hash[:10]}")
        self.query_one("#job-error").display = False
        self.poll()
        self.set_interval(TICK_S, self.poll)

    def poll(self) -> None:
        if not self.polling:
            self.polling = True
            self.read(self.last_seq)

    def read(self, since: int) -> None:
        job_hash, results_dir, reading = self.job_hash, self.app.results_dir, self.app.reading

        def read():
            with reading() as store:
                if store is None:
                    raise W2SError(f"no results database in {results_dir}")
                rows = browse.job_rows(store, job_hash, limit=1)
                series, last = browse.metric_series(store, job_hash, KEYS, since)
                full = store.get_job(job_hash) if rows else None
            job = {**rows[0], "error": (full or {}).get("error")} if rows else None
            yield JobEvents(since, job, series, last)
            if job is not None:
                log = JobDir(results_dir / job["dir"]).log if job["dir"] else None
                yield LogTail(tail_lines(log, LOG_LINES, LOG_BYTES) if log else [])

        read_in_thread(self, read, group="live")

    def on_read_failed(self, message: ReadFailed) -> None:
        message.stop()  # shown in place, not as a toast every tick
        self.polling = False
        self.query_one("#job-info", Static).update(Text(message.text, style="red"))

    def on_job_events(self, message: JobEvents) -> None:
        self.polling = False
        if message.since != self.last_seq:
            return
        self.last_seq = message.last
        for key, points in message.series.items():
            self.series[key].extend(points)
        info = self.query_one("#job-info", Static)
        job = message.job
        if job is None:
            info.update(Text(f"no job {self.job_hash[:10]} in the database", style="red"))
            return
        p = fmt.progress(job)
        acc = job["final_acc"] if job["final_acc"] is not None else job["last_test_acc"]
        info.update(
            Text.assemble(
                (job["model"], "bold"),
                f" · {fmt.role(job)} · seed {job['seed']} · ",
                (job["status"], "bold"),
                f" · {p['progress']} · ETA {p['eta']} · elapsed "
                f"{p['elapsed']} · {p['speed']} ex/s · test acc {fmt.num(acc)}",
                gpu_use(job),
                f" · {slurm_text(job)}" if slurm_text(job) else "",
            )
        )
        error = self.query_one("#job-error", Static)
        error.display = bool(job.get("error"))
        if job.get("error"):
            error.update(Text(f"{job['status']}: {job['error']}", style="red"))
        if message.series or message.since < 0:
            self.draw()

    def on_log_tail(self, message: LogTail) -> None:
        if message.lines != self.log_lines:
            self.log_lines = message.lines
            log = self.query_one(Log)
            log.clear()
            log.write_lines(message.lines)

    def draw(self) -> None:
        for name, keys in CURVES.items():
            title = "loss and α" if name == "loss" and self.series[Event.ALPHA] else name
            self.query_one(f"#plot-{name}", CurvePlot).plot(title, {key: self.series[key] for key in keys})
