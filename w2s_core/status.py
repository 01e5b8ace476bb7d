"""Job and run statuses: one enum each, with the sets the supervisor, store, CLI and TUI agree on.

Members are `str` subclasses, so they compare equal to (and are stored in SQLite as) their plain
values: `JobStatus.DONE == "done"`.
"""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    PLANNED = "planned"  # in the plan of a --dry-run or an interrupted run, never queued
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # never started because a job it needs failed

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


# A job in ACTIVE may still change; one in TERMINAL never will (unless retried).
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED})
# What `w2s retry` picks up by default.
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED})
FINISHED_RUN = frozenset({RunStatus.DONE, RunStatus.FAILED, RunStatus.INTERRUPTED})
