"""What thread workers tell the UI: one typed Message per kind of read, posted to the screen that asked.

Workers never touch widgets (widgets belong to the UI thread); they read the store or a job folder
and `post_message` one of these (post_message is thread-safe), as Toolong's scanners do. The screen's
`on_<message>` handler then updates its widgets. `Notice` and `ReadFailed` bubble up to the app, which
shows them as toasts unless a screen handles them first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual.message import Message


@dataclass
class JobsLoaded(Message):
    """A window of `w2s_core.store.queries.job_rows` from row `offset`, and the number of jobs
    matching the same filter (`every`: in the whole database, to say how many the filter hides)."""

    rows: list[dict]
    total: int
    offset: int = 0
    every: int = 0


@dataclass
class PlanReady(Message):
    """A recipe's plan preview, whether the recipe is valid (so launchable), how many of its jobs a
    launch would start, the database's state it was planned against, and whether to launch it now."""

    path: Path
    text: Text
    ok: bool
    to_run: int = 0
    seen: tuple = ()
    launch: bool = False


@dataclass
class ResultsLoaded(Message):
    """The PGR rows and bootstrap chains of one recipe (None before any result) in `metric`, and
    notes on what the rows leave out (pairs missing for a failed job...); the keys its grid sweeps
    ([] without a grid) and the one the rows are pivoted by (None: not pivoted)."""

    recipes: list[dict]
    recipe: dict | None
    rows: list[dict]
    chains: list[dict]
    metric: str
    notes: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    by: str | None = None


@dataclass
class JobEvents(Message):
    """A job's row and the metric points after sequence number `since`, up to `last`."""

    since: int
    job: dict | None
    series: dict[str, list[tuple[int, float]]]
    last: int


@dataclass
class LogTail(Message):
    """The last lines of a job's log."""

    lines: list[str]


@dataclass
class SeriesLoaded(Message):
    """Metric curves of several jobs: {job hash: {metric: [(step, value)]}}."""

    series: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)


@dataclass
class GpusLoaded(Message):
    """The latest GPU sample the supervisor stored (`Store.latest_gpus`; None when there is none) and the
    time it was read, so the panel can tell a live sample from one a supervisor left behind."""

    snapshot: dict | None
    now: float


@dataclass
class Exported(Message):
    """History's export: the file written and how many jobs it holds."""

    path: Path
    count: int


@dataclass
class Notice(Message):
    """A line for the user (a toast): an export written, a job cancelled, a cancel refused."""

    text: str
    severity: str = "information"


@dataclass
class ReadFailed(Message):
    """A worker's read failed with a W2SError or OSError; `text` says what and where."""

    text: str


@dataclass
class RunsEnded(Message):
    """Runs that finished or failed, and jobs that crashed, since the app's previous look (alerts.py):
    (text, severity) each. The app rings the terminal bell and shows each as a toast."""

    alerts: list[tuple[str, str]]
