"""A job's upstreams: the jobs that must be done before it can start.

Two kinds, both recorded in the job's spec by the plan: the job whose predictions are its labels
(`labels = {"from": <hash>, "split": ...}`: a transfer's weak GT or prompting job, a bootstrap step's
step before it), and the generative stage its model starts from (`init = {"from": <hash>}`). A GT
job without a stage has none. From them, the queue's order: a queued job is ready once every upstream
is done, and blocked for good once one failed, was cancelled or skipped (or is missing).
Torch-free and store-read-only, so the CLI may use it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from w2s_core.status import ACTIVE, JobStatus

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import JobRow


def upstream_hashes(spec: dict) -> list[str]:
    """The keys of the jobs `spec` needs done first: its labeller, then its generative stage."""
    return [ref["from"] for ref in (spec.get("labels"), spec.get("init")) if isinstance(ref, dict)]


def upstream_hash(spec: dict) -> str | None:
    """The labeller's key only (kept for callers from before generative stages; use `upstream_hashes`)."""
    labels = spec.get("labels")
    return labels["from"] if isinstance(labels, dict) else None


def blocked(store: Store) -> list[tuple[JobRow, str]]:
    """Queued jobs that will never run, each with why: an upstream ended without succeeding."""
    found = []
    for row in store.jobs(status=JobStatus.QUEUED):
        for upstream in upstream_hashes(row["spec"]):
            up = store.get_job(upstream)
            if up is None or (up["status"] != JobStatus.DONE and up["status"] not in ACTIVE):
                found.append((row, f"upstream job {upstream[:10]} {up['status'] if up else 'is missing'}"))
                break
    return found


def ready(store: Store) -> list[JobRow]:
    """Queued jobs that may start now (every upstream done), oldest run first."""
    found = []
    for row in sorted(store.jobs(status=JobStatus.QUEUED), key=lambda r: r["run_id"] or 0):
        ups = (store.get_job(h) for h in upstream_hashes(row["spec"]))
        if all(up is not None and up["status"] == JobStatus.DONE for up in ups):
            found.append(row)
    return found
