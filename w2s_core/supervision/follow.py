"""Following a run from the store: what `w2s run` (without --detach), `w2s retry` and `w2s follow` print.

The supervisor (supervisor.py) is the only writer of a results folder; a follower only reads it.
`w2s run` posts its request and makes sure a supervisor runs, exactly as --detach does, then follows:

    wait_for_run   the run a posted request made, or why the supervisor could not apply it
    RunWatch       a run's jobs: each look reports those that ended since the last (words: progress.py)
    Keeper         keeps a supervisor on the folder while the run is open: one that died is started
                   again, as `w2s queue` would, a few times; then the follower says where to look
    attach         all of that until the run is over (an Outcome), and what Ctrl-C does

The supervisor and the jobs run in sessions of their own, so losing the terminal (SIGHUP, or EPIPE or
EIO writing to it) ends only the follower, and `w2s follow` re-attaches. Ctrl-C stops following and
says how to cancel; a second Ctrl-C within DOUBLE_INTERRUPT_S, or the first with
`cancel_on_interrupt`, cancels the run's jobs through the supervisor (their process trees are gone
when it returns).
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import JobDir, tail_lines
from w2s_core.status import ACTIVE, FINISHED_RUN, TERMINAL, JobStatus
from w2s_core.store import Store
from w2s_core.supervision import requests
from w2s_core.supervision.progress import Reporter, unfinished_line
from w2s_core.supervision.supervisor import LOG_NAME, cancel_jobs, ensure_running, holder, resume_parallel

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow, RunRow

POLL_S = 0.5  # how often a follower reads the store (the supervisor looks at its jobs every 0.2 s)
REQUEST_POLL_S = 0.1  # how often it looks whether the supervisor took its request
LOOK_S = 2.0  # how often it checks that a supervisor holds the folder (the check takes the lock an instant)
GRACE_S = 20.0  # how long the folder may be without a supervisor before the follower starts one
RESTARTS = 3  # supervisors one follower starts before it gives up and says where to look
DOUBLE_INTERRUPT_S = 3.0  # a second Ctrl-C within this many seconds cancels the run's jobs
CANCEL_TIMEOUT_S = 120.0

SUBMIT, RETRY = "submit", "retry"  # the request that made a run: what its first line says
DETACHED, CANCELLED = "detached", "cancelled"  # why following stopped before the run was over
INTERRUPTED_EXIT = 130  # what a shell reports for a command stopped by Ctrl-C


@dataclass
class Outcome:
    """How following a run ended: the run over (`stopped` None), or Ctrl-C first."""

    run_id: int | None
    recipe_hash: str | None = None
    jobs: list = field(default_factory=list)  # the jobs followed, as last read
    stopped: str | None = None  # DETACHED (jobs go on) or CANCELLED

    @property
    def failed(self) -> list[JobRow]:
        """The jobs followed that did not end done."""
        return [j for j in self.jobs if j["status"] != JobStatus.DONE]

    @property
    def exit_code(self) -> int:
        """0: every job done; 1: some failed, were skipped or cancelled; 130: Ctrl-C."""
        if self.stopped:
            return INTERRUPTED_EXIT
        return 1 if self.failed else 0

    def failure_lines(self) -> list[str]:
        """One line per job that did not end done, saying which and why."""
        return [unfinished_line(j) for j in self.failed]


class TerminalLost(BrokenPipeError):
    """stdout is gone (a closed pipe, or a terminal that hung up): nobody is left to follow for."""


def guarded(echo: Callable[[str], None]) -> Callable[[str], None]:
    """`echo` that turns a write to a vanished terminal (EPIPE, EIO) into TerminalLost, after pointing
    stdout and stderr at /dev/null so that nothing else (the flush at exit) fails on it again."""

    def say(line: str) -> None:
        try:
            echo(line)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EIO):
                raise
            _silence()
            raise TerminalLost(exc.errno, "the terminal is gone") from exc

    return say


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (captured in a test)
            pass
    os.close(devnull)


def _print(line: str) -> None:
    print(line, flush=True)  # flushed: `w2s run | tee log` shows progress as it happens


class Keeper:
    """Keeps a supervisor on `root` while a follower waits on it (one killed or lost is started again)."""

    def __init__(
        self,
        root: Path,
        echo: Callable[[str], None],
        parallel: int = 1,
        jobs_per_gpu: int = 1,
        just_started: bool = True,
    ) -> None:
        """`just_started`: a supervisor was started or found just now (`w2s run`), so give it GRACE_S to
        take the folder; else (`w2s follow`) look at once, as `w2s queue` does."""
        self.root, self.echo = root, echo
        self.parallel, self.jobs_per_gpu = parallel, jobs_per_gpu
        now = time.monotonic()
        self.seen = now if just_started else now - GRACE_S
        self.next_look = now + LOOK_S if just_started else now
        self.restarts = 0

    def check(self, active: list[JobRow]) -> None:
        """Every LOOK_S: start a supervisor when none has held the folder for GRACE_S."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + LOOK_S
        if holder(self.root) is not None:
            self.seen = now
            return
        if now - self.seen < GRACE_S:
            return
        log = self.root / LOG_NAME
        if self.restarts >= RESTARTS:
            tail = "\n".join(tail_lines(log, 5))
            raise W2SError(
                f"No supervisor stays on {self.root}: the {RESTARTS} this command started exited with "
                f"work left. The end of {log}:\n{tail}\n`w2s queue` shows the queue and starts another."
            )
        try:
            pid, started = ensure_running(self.root, max(self.parallel, resume_parallel(active)), self.jobs_per_gpu)
        except OSError as exc:
            raise W2SError(f"No supervisor runs on {self.root} and none can be started: {exc}") from exc
        self.seen = now
        if started:  # else one took the folder meanwhile
            self.restarts += 1
            self.echo(f"no supervisor was running: started pid {pid} (log {log})")


def rejection(root: Path, request_id: str, wait_s: float = 5.0) -> str:
    """Why the supervisor set a request aside, as its log says (progress.Reporter.rejected). It sets
    the file aside first and logs after, so the line may take a moment to appear."""
    name = f"{request_id}.json"
    marker = f"could not apply request {name}: "
    log = root / LOG_NAME
    deadline = time.monotonic() + wait_s
    while True:
        text = "\n".join(tail_lines(log, 2000, max_bytes=1 << 20))
        at = text.rfind(marker)
        if at >= 0:
            return text[at + len(marker) :].split(f" (set aside as {request_id}", 1)[0].strip()
        if time.monotonic() > deadline:
            return f"the request {name} was not applied; see {log}"
        time.sleep(REQUEST_POLL_S)


def wait_for_run(root: Path, request_id: str, keeper: Keeper) -> int:
    """The run a posted request made, once the supervisor applied it; InputError with the supervisor's
    reason when it could not (the recipe no longer plans where it was submitted from, say)."""
    while requests.is_pending(root, request_id):
        keeper.check([])
        time.sleep(REQUEST_POLL_S)
    with Store.open(root, readonly=True) as store:
        run_id = store.run_of_submission(request_id)
    if run_id is None:
        raise InputError(
            f"The supervisor could not apply this request: {rejection(root, request_id)} (its log: {root / LOG_NAME})"
        )
    return run_id


def run_kind(run: RunRow) -> str:
    """SUBMIT or RETRY: the command that made the run, the first of `run` and `retry` in its argv."""
    words = [w for w in (run["argv"] or [])[1:] if w in ("run", RETRY)]
    return RETRY if words and words[0] == RETRY else SUBMIT


class RunWatch:
    """One run's jobs as last read; each `look` reports the jobs that ended since the one before.

    A submitted run counts, as the supervisor does, the jobs it queued and the jobs of its recipe
    then queued or running for another run; a retried run only the jobs it queued again. Jobs that
    ended before the first look are reported by it, so a re-attached follower replays the run.
    """

    def __init__(self, store: Store, run_id: int, report: Reporter, kind: str | None = None) -> None:
        self.store, self.run_id, self.report = store, run_id, report
        run = self.run()
        self.recipe_hash = run["recipe_hash"]
        self.kind = kind or run_kind(run)
        own = store.jobs(run_id=run_id)
        shared = []
        if self.kind == SUBMIT and self.recipe_hash:
            shared = [
                j for j in store.jobs(recipe_hash=self.recipe_hash, status=sorted(ACTIVE)) if j["run_id"] != run_id
            ]
        self.rows: dict[str, JobRow] = {j["hash"]: j for j in own + shared}
        self.reported: set[str] = set()
        recipe = next((r for r in store.recipes() if r["hash"] == self.recipe_hash), None)
        self.name = recipe["name"] if recipe else None  # what `w2s cancel NAME` takes
        if self.kind == RETRY or recipe is None:
            report.retried(run_id, len(self.rows))
        else:
            total = len(store.jobs(recipe_hash=self.recipe_hash))
            report.submitted(run_id, recipe["name"], total=total, todo=len(self.rows))

    def run(self) -> RunRow:
        run = next((r for r in self.store.runs() if r["id"] == self.run_id), None)
        if run is None:
            raise InputError(f"no run with id {self.run_id} in {self.store.path}; `w2s runs` lists them")
        return run

    def active(self) -> list[JobRow]:
        return [j for j in self.rows.values() if j["status"] in ACTIVE]

    def look(self) -> bool:
        """Report the jobs that ended since the last look; True once the run is over."""
        fresh = {j["hash"]: j for j in self.store.jobs(run_id=self.run_id)}
        for job_hash in self.rows:  # a job of another run, or queued again since by a later run
            if job_hash not in fresh:
                fresh[job_hash] = self.store.get_job(job_hash) or self.rows[job_hash]
        self.rows = {h: fresh[h] for h in self.rows}
        ended = [j for h, j in self.rows.items() if h not in self.reported and j["status"] in TERMINAL]
        for row in sorted(ended, key=lambda j: j["finished_at"] or 0.0):
            self.say(row)
            self.reported.add(row["hash"])
        # the run's row only once every job is reported: `runs()` reads every run in the store
        return len(self.reported) == len(self.rows) and self.run()["status"] in FINISHED_RUN

    def say(self, row: JobRow) -> None:
        if row["status"] == JobStatus.CANCELLED:
            self.report.cancelled(row)
        elif row["status"] == JobStatus.SKIPPED:
            self.report.skipped(row, row["error"] or "", run_id=self.run_id)
        else:
            seconds = (row["finished_at"] or 0.0) - (row["started_at"] or row["finished_at"] or 0.0)
            self.report.finished(
                row, row["status"] == JobStatus.DONE, seconds, JobDir(Path(row["dir"])).log, run_id=self.run_id
            )

    def outcome(self, stopped: str | None = None) -> Outcome:
        return Outcome(self.run_id, self.recipe_hash, list(self.rows.values()), stopped)


class Follower:
    """Follows one run (made by a posted request, or named) from the store until it is over."""

    def __init__(
        self, root: Path, echo: Callable[[str], None], keeper: Keeper, kind: str | None = None, name: str | None = None
    ) -> None:
        self.root, self.echo, self.keeper, self.kind, self.name = root, echo, keeper, kind, name
        self.request_id: str | None = None
        self.run_id: int | None = None

    def follow(self, request_id: str | None = None, run_id: int | None = None) -> Outcome:
        self.request_id = request_id
        self.run_id = run_id if run_id is not None else wait_for_run(self.root, request_id or "", self.keeper)
        with Store.open(self.root, readonly=True) as store:
            watch = RunWatch(store, self.run_id, Reporter(store, self.echo), self.kind)
            self.name = self.name or watch.name
            while not watch.look():
                self.keeper.check(watch.active())
                time.sleep(POLL_S)
            return watch.outcome()

    def interrupted(self, cancel_now: bool) -> Outcome:
        """Ctrl-C: say how to stop the jobs and leave them running, unless told (twice, or by
        cancel_now) to cancel them."""
        if not cancel_now:
            target = self.name or (self.run_id if self.run_id is not None else "RUN")
            try:  # from before the message: a second Ctrl-C the moment it shows must still cancel
                self.echo(
                    f"stopped following: jobs continue; `w2s cancel {target}` stops them; `w2s queue` shows them"
                    f" (press Ctrl-C again within {DOUBLE_INTERRUPT_S:g} s to cancel them now)"
                )
                time.sleep(DOUBLE_INTERRUPT_S)
                return Outcome(self.run_id, stopped=DETACHED)
            except KeyboardInterrupt:
                pass
        return self.cancel()

    def cancel(self) -> Outcome:
        """Cancel the run's queued and running jobs through the supervisor; returns once they are gone."""
        if self.run_id is None:  # Ctrl-C came before the supervisor took the request
            self.run_id = wait_for_run(self.root, self.request_id or "", self.keeper)
        with Store.open(self.root, readonly=True) as store:
            hashes = [j["hash"] for j in store.jobs(run_id=self.run_id, status=sorted(ACTIVE))]
        if hashes:
            cancel_jobs(self.root, hashes, CANCEL_TIMEOUT_S)
        self.echo(f"cancelled {len(hashes)} job(s) of run {self.run_id}; their process trees are gone")
        with Store.open(self.root, readonly=True) as store:
            jobs = store.jobs(run_id=self.run_id)
        return Outcome(self.run_id, None, jobs, CANCELLED)


def attach(
    root: Path,
    *,
    request_id: str | None = None,
    run_id: int | None = None,
    kind: str | None = None,
    name: str | None = None,
    cancel_on_interrupt: bool = False,
    parallel: int = 1,
    jobs_per_gpu: int = 1,
    echo: Callable[[str], None] = _print,
) -> Outcome:
    """Follow the run `request_id` made (posted already), or run `run_id`, until it is over; Ctrl-C as
    the module docstring says. Raises TerminalLost (a BrokenPipeError) when stdout goes away."""
    say = guarded(echo)
    keeper = Keeper(Path(root), say, parallel, jobs_per_gpu, just_started=request_id is not None)
    follower = Follower(Path(root), say, keeper, kind, name)
    try:
        return follower.follow(request_id, run_id)
    except KeyboardInterrupt:
        return follower.interrupted(cancel_on_interrupt)
