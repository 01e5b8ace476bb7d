"""The GPU panel of the Runs and Live screens: per GPU a utilisation bar, a memory bar (used/total),
temperature, power, and the w2s jobs holding its memory; "no GPU" when nothing was ever sampled.

It shows what the supervisor last stored (`Store.latest_gpus`, sampled through NVML every few
seconds while it works), read every REFRESH_S by a thread worker that posts a `GpusLoaded` (the
widget never reads on the UI thread). A sample older than STALE_S is shown with its time: the
supervisor has stopped, and the figures are those of that moment, not of now. On the Live screen
(`job_hash` set) the job's own share is highlighted.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ..messages import GpusLoaded, ReadFailed
from ..workers import read_in_thread

REFRESH_S = 2.0
STALE_S = 15.0  # three sampling intervals of the supervisor (w2s_core.supervision.sampling.GPU_SAMPLE_S)
BAR = 8  # cells of a bar: a GPU with one job fits 80 columns
NO_GPU = "no GPU"


def bar(fraction: float | None, width: int = BAR) -> Text:
    """A bar of `width` cells, green below half, yellow below 80%, red above; dim dots when unknown."""
    if fraction is None:
        return Text("·" * width, style="dim")
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    style = "green" if fraction < 0.5 else "yellow" if fraction < 0.8 else "red"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"))


def gib(mb: float) -> str:
    return f"{mb / 1024:.1f}"


def title(snapshot: dict, now: float) -> Text:
    """What and when: the GPUs' names, and the sample's age (or its time, when no supervisor samples now)."""
    names = [g["name"] or "GPU" for g in snapshot["gpus"]]
    kinds = ", ".join(f"{names.count(n)} × {n}" for n in dict.fromkeys(names))
    age = now - snapshot["t"]
    if age <= STALE_S:
        when = Text(f"sampled {max(0.0, age):.0f} s ago", style="dim")
    else:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot["t"]))
        when = Text(f"not sampled since {stamp}", style="yellow")  # no supervisor samples now
    return Text.assemble(("GPU", "bold"), f" · {kinds} · ", when)


def gpu_line(gpu: dict, holders: list[dict], job_hash: str | None = None) -> Text:
    """One GPU: index, utilisation bar and %, memory bar and used/total GiB, °C, W, then its w2s jobs
    (hash prefix, model, GiB held)."""
    util, used, total = gpu["util_pct"], gpu["mem_used_mb"], gpu["mem_total_mb"]
    pct = "-" if util is None else f"{util:.0f}%"
    temp = "-" if gpu["temp_c"] is None else f"{gpu['temp_c']:.0f}°C"
    power = "-" if gpu["power_w"] is None else f"{gpu['power_w']:.0f}W"
    line = Text.assemble(
        (f"{gpu['gpu']:>2} ", "bold"),
        "util ",
        bar(None if util is None else util / 100),
        f" {pct:>4} mem ",
        bar(used / total if total else None),
        f" {gib(used):>5}/{gib(total) if total else '-'}G {temp:>4} {power:>5}",
    )
    for holder in holders:
        model = holder["model"] or "?"
        style = "bold reverse" if holder["job_hash"] == job_hash else "cyan"
        line.append("  ")
        line.append(f"{holder['job_hash'][:6]} {model} {gib(holder['mem_mb'])}G", style=style)
    return line


def panel_text(snapshot: dict | None, now: float, job_hash: str | None = None) -> Text:
    """The panel's lines for `Store.latest_gpus`'s snapshot read at `now` (None: "no GPU")."""
    if not snapshot or not snapshot["gpus"]:
        return Text.assemble(
            ("GPU", "bold"), f" · {NO_GPU} ", ("(none sampled: a supervisor samples NVIDIA GPUs as jobs run)", "dim")
        )
    lines = [title(snapshot, now)]
    for gpu in snapshot["gpus"]:
        holders = [h for h in snapshot["jobs"] if h["gpu"] == gpu["gpu"]]
        lines.append(gpu_line(gpu, holders, job_hash))
    return Text("\n").join(lines)


class GpuPanel(Static):
    """The latest GPU sample of the app's results folder (see the module docstring)."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        max-height: 10;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, job_hash: str | None = None, **kwargs) -> None:
        super().__init__(panel_text(None, 0.0), **kwargs)
        self.job_hash = job_hash
        self.snapshot: dict | None = None

    def on_mount(self) -> None:
        self.load()
        self.set_interval(REFRESH_S, self.load)

    def load(self) -> None:
        """Read the latest sample in a thread worker (not while another screen covers this one)."""
        if not self.screen.is_current:
            return
        reading = self.app.reading

        def read():
            with reading() as store:
                snapshot = store.latest_gpus() if store is not None else None
            yield GpusLoaded(snapshot, time.time())

        read_in_thread(self, read, group="gpu-panel", exclusive=True)

    def on_gpus_loaded(self, message: GpusLoaded) -> None:
        message.stop()  # the panel's own read; the screen has nothing to do with it
        self.snapshot = message.snapshot
        self.update(panel_text(message.snapshot, message.now, self.job_hash))

    def on_read_failed(self, message: ReadFailed) -> None:
        message.stop()  # said in place, not as a toast every REFRESH_S
        self.update(Text.assemble(("GPU", "bold"), " · ", (message.text, "red")))
