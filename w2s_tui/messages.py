"""What thread workers tell the UI: one typed Message per kind of read, posted to the screen that asked.

Workers never touch widgets (widgets belong to the UI thread); they read the store or a job folder
and `post_message` one of these (post_message is thread-safe), as Toolong's scanners do. The screen's
`on_<message>` handler then updates its widgets. `Notice` and `ReadFailed` bubble up to the app, which
shows them as toasts unless a screen handles them first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message


@dataclass
class JobsLoaded(Message):
    """A page of `w2s_core.store.queries.job_rows` and the number of jobs matching the same filter."""

    rows: list[dict]
    total: int


@dataclass
class PlanReady(Message):
    """A recipe's plan preview (Rich markup), and whether the recipe is valid, so launchable."""

    path: Path
    text: str
    ok: bool


@dataclass
class ResultsLoaded(Message):
    """The PGR rows and bootstrap chains of one recipe (None before any result) in `metric`."""

    recipes: list[dict]
    recipe: dict | None
    rows: list[dict]
    chains: list[dict]
    metric: str


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
class Notice(Message):
    """A line for the user (a toast): an export written, a job cancelled, a cancel refused."""

    text: str
    severity: str = "information"


@dataclass
class ReadFailed(Message):
    """A worker's read failed with a W2SError or OSError; `text` says what and where."""

    text: str
