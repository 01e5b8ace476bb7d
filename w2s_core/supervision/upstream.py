"""A job's upstream: the job whose predictions are its labels, which must be done before it can start.

A GT job has none; a transfer job's upstream is its weak model's GT job, a bootstrap step's the step
before it. The plan records it in the job's spec as `labels = {"from": <upstream hash>, "split": ...}`.
From that, the queue's order: a queued job is ready once its upstream is done, and blocked for good
once its upstream failed, was cancelled or skipped (or is missing).
Torch-free and store-read-only, so the CLI may use it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from w2s_core.status import ACTIVE, JobStatus

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import JobRow


def upstream_hash(spec: dict) -> str | None:
    labels = spec.get("labels")
    return labels["from"] if isinstance(labels, dict) else None


def blocked(store: Store) -> list[tuple[JobRow, str]]:
    """Queued jobs that will never run, each with why: their upstream ended without succeeding."""
    found = []
    for row in store.jobs(status=JobStatus.QUEUED):
        upstream = upstream_hash(row["spec"])
        up = store.get_job(upstream) if upstream else None
        if upstream and (up is None or (up["status"] != JobStatus.DONE and up["status"] not in ACTIVE)):
            found.append((row, f"upstream job {upstream[:10]} {up['status'] if up else 'is missing'}"))
    return found


def ready(store: Store) -> list[JobRow]:
    """Queued jobs that may start now (no upstream, or it is done), oldest run first."""
    found = []
    for row in sorted(store.jobs(status=JobStatus.QUEUED), key=lambda r: r["run_id"] or 0):
        upstream = upstream_hash(row["spec"])
        up = store.get_job(upstream) if upstream else None
        if upstream is None or (up is not None and up["status"] == JobStatus.DONE):
            found.append(row)
    return found
