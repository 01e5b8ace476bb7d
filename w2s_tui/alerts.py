"""What ended while the app watched: runs that finished or failed, jobs that crashed (issue 13).

The app looks every WATCH_S seconds, in a thread worker (app.py), and compares with its previous look:
a run that was running (or not there yet) and is now done, failed or interrupted, or a job that failed
since (a retried job that fails again counts again: it is known by its hash and its end time). The
first look only learns what is there, so opening the app never rings for what ended before.
"""

from __future__ import annotations

from w2s_core.status import FINISHED_RUN, JobStatus, RunStatus
from w2s_core.store import Store

SEVERITY = {RunStatus.DONE: "information", RunStatus.FAILED: "error", RunStatus.INTERRUPTED: "warning"}


class RunWatch:
    """The runs and crashed jobs of the previous look; `look` returns what is new since."""

    def __init__(self) -> None:
        self.runs: dict[int, str] | None = None  # run id -> status; None before the first look
        self.crashes: set[tuple[str, float | None]] = set()  # (job hash, finished_at) of failed jobs

    def look(self, store: Store | None) -> list[tuple[str, str]]:
        """(toast text, severity) for each run that ended and each job that crashed since the last look."""
        runs = {r["id"]: r for r in store.runs()} if store is not None else {}
        failed = store.jobs(status=JobStatus.FAILED) if store is not None else []
        crashes = {(j["hash"], j["finished_at"]) for j in failed}
        first, before, new_crashes = self.runs is None, self.runs or {}, crashes - self.crashes
        self.runs, self.crashes = {i: r["status"] for i, r in runs.items()}, crashes
        if first:
            return []
        ended = [r for i, r in runs.items() if r["status"] in FINISHED_RUN and before.get(i) not in FINISHED_RUN]
        # the recipes' names only for a toast: not on every look
        names = {r["hash"]: r["name"] for r in store.recipes()} if store is not None and ended else {}
        alerts = []
        for run in ended:
            recipe = names.get(run["recipe_hash"]) or "-"
            alerts.append((f"run {run['id']} ({recipe}) {run['status']}", SEVERITY.get(run["status"], "information")))
        for job in failed:
            if (job["hash"], job["finished_at"]) in new_crashes:
                why = (job["error"] or "").strip().splitlines()  # the diagnosis's first line (its log tail follows)
                text = f"job {job['hash'][:10]} ({job['model']}) crashed: {why[0] if why else 'no diagnosis'}"
                alerts.append((text, "error"))
        return alerts
