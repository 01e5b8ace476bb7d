"""How jobs and numbers read on screen: one place, shared by every table."""

from __future__ import annotations

import math
import time

from w2s_core.status import JobStatus
from w2s_core.store.queries import GT_ROLE_TEXT


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "-"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def role(job: dict) -> str:
    """GT (the weak supervisor and the ceiling of its model), transfer, or bootstrap step k/n; a
    search matches these words (see `queries.GT_ROLE_TEXT`)."""
    r = job.get("role") or {}
    if job["kind"] == "gt":
        return GT_ROLE_TEXT
    if job["kind"] == "transfer":
        return f"{job.get('weak_model')}→ {job.get('loss') or ''}".strip()
    if r.get("role") == "bootstrap":
        return f"boot {r['step']}/{len(r['chain']) - 1}"
    return job["kind"]


def progress(job: dict, now: float | None = None) -> dict[str, str]:
    """Progress, ETA, elapsed and speed of a job row from `w2s_core.store.queries.job_rows`."""
    now = now or time.time()
    total, seen, speed = job.get("total_examples"), job.get("last_examples"), job.get("last_examples_per_s")
    if job["status"] == JobStatus.DONE:
        pct = "100%"
    elif total and seen is not None:
        pct = f"{min(100, 100 * seen / total):.0f}%"
    else:
        pct = "-"
    eta = "-"
    if job["status"] == JobStatus.RUNNING and total and seen is not None and speed:
        eta = duration(max(0.0, total - seen) / speed)
    start, end = job.get("started_at"), job.get("finished_at")
    elapsed = duration((end or now) - start) if start and job["status"] != JobStatus.QUEUED else "-"
    return {"progress": pct, "eta": eta, "elapsed": elapsed, "speed": num(speed, 0) if speed else "-"}
