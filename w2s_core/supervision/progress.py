"""What the supervisor says as it works: one line per event, counted per run ("[3/6] done ...").

The loop and the handlers decide; this module only words and counts. Lines go to `echo`: a
timestamped print into supervisor.log for the supervisor; print for a follower (follow.py), which
says the same lines from what it reads in the store, so `w2s run` in the foreground, `w2s follow`
and the log read alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.jobdir import Event, Result
from w2s_core.status import ACTIVE
from w2s_core.store import Store
from w2s_core.supervision.diagnosis import headline

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow


def describe_row(row: JobRow) -> str:
    """plan.describe for a stored job."""
    from w2s_core.spec.plan import Job, describe

    return describe(
        Job(row["hash"], row["kind"], row["model"], row["seed"], row["spec"], [], row["weak_model"], row["loss"])
    )


def unfinished_line(row: JobRow) -> str:
    """A job that did not end done, for the list a follower gives when a run failed."""
    why = f": {headline(row['error']).splitlines()[0]}" if (row["error"] or "").strip() else ""
    return f"  {row['status']:<9} {row['hash'][:10]}  {describe_row(row)}{why}"


class Reporter:
    """Words and counts for the supervisor's events; `echo` gets each line."""

    def __init__(self, store: Store, echo: Callable[[str], None] = print) -> None:
        self.store, self.echo = store, echo
        self.progress: dict[int, list[int]] = {}  # run id -> [finished, total]

    def submitted(self, run_id: int, name: str, total: int, todo: int) -> None:
        self.progress[run_id] = [total - todo, total]
        self.echo(f"{name}: {total} jobs, {total - todo} already done, {todo} to run")

    def retried(self, run_id: int, count: int) -> None:
        self.progress[run_id] = [0, count]
        self.echo(f"retry: {count} job(s) queued again")

    def cancelled(self, row: JobRow) -> None:
        self.echo(f"cancelled {describe_row(row)}")

    def reattached(self, row: JobRow, pid: int, alive: bool, where: str | None = None) -> None:
        """A job a previous supervisor started; `where`: how it is found (default: by its pid)."""
        state = "still running" if alive else "ended while unsupervised"
        self.echo(f"re-attached {describe_row(row)} ({where or f'pid {pid}'}, {state})")

    def requeued(self, row: JobRow, count: int, where: str) -> None:
        """A job that stopped on a signal after saving a checkpoint (or that Slurm preempted), queued again."""
        self.echo(f"requeued {describe_row(row)}: it stopped on a signal and resumes from {where} (requeue {count})")

    def finished(self, row: JobRow, ok: bool, seconds: float, log: Path, run_id: int | None = None) -> None:
        """A job that ended; counted in `run_id` (default: the run that queued it)."""
        count = self._count(row["run_id"] if run_id is None else run_id)
        if ok:
            figure = _headline(self.store.results(row["hash"]))
            self.echo(f"{count} done   {describe_row(row)}: {figure} ({seconds:.1f}s)")
        else:
            self.echo(f"{count} FAILED {describe_row(row)}: {headline(row['error'])}\n    log: {log}")

    def skipped(self, row: JobRow, why: str, run_id: int | None = None) -> None:
        self.echo(f"{self._count(row['run_id'] if run_id is None else run_id)} skipped  {describe_row(row)} ({why})")

    def rejected(self, path: Path, problem: Exception, moved_to: Path) -> None:
        self.echo(f"could not apply request {path.name}: {problem} (set aside as {moved_to.name})")

    def _count(self, run_id: int | None) -> str:
        """The run's count of ended jobs, this one included: "[finished/total]"."""
        if run_id is None:
            return "[-]"
        if run_id not in self.progress:  # a run this supervisor took over; the job just counted is ended
            jobs = self.store.jobs(run_id=run_id)
            self.progress[run_id] = [sum(j["status"] not in ACTIVE for j in jobs) - 1, len(jobs)]
        progress = self.progress[run_id]
        progress[0] += 1
        return f"[{progress[0]}/{progress[1]}]"


def _headline(results: dict) -> str:
    """A finished job's one figure: its test accuracy, or a generative stage's LM loss (it has no test set)."""
    if Event.TEST_ACC not in results and Result.LM_LOSS in results:
        return f"LM loss {results[Result.LM_LOSS]:.3f} (from {results.get(Result.INITIAL_LM_LOSS, float('nan')):.3f})"
    return f"test acc {results.get(Event.TEST_ACC, float('nan')):.3f}"
