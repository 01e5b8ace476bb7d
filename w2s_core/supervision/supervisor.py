"""The supervisor process: the one process that writes a results folder while work is queued.

Other processes never write the database while a supervisor holds the writer lock (lock.py): they
post requests (requests.py) and make sure a supervisor is running (`ensure_running`). `w2s run`,
with or without --detach, starts a supervisor in its own session (`spawn`: `python -m
w2s_core.supervision RESULTS_DIR`), so it survives the terminal and the SSH connection, logging to
supervisor.log; without --detach the command then follows the run from the store (follow.py). A
supervisor works the queue (loop.py) and exits when nothing is queued, running or requested.
`cancel_jobs` asks the running supervisor to cancel jobs and waits until it has.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.errors import W2SError
from w2s_core.store import Store
from w2s_core.supervision.lock import WriterLock
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import INBOX, Cancel, is_pending, pending, post
from w2s_core.supervision.slots import Slot, device_slots

if TYPE_CHECKING:
    from w2s_core.store.rows import JobRow

LOG_NAME = "supervisor.log"
# How a supervisor process starts: `python -m w2s_core.supervision ROOT --parallel N --jobs-per-gpu M`.
# Tests swap in `-c <code>` that runs the same `main` with a stand-in trainer.
ENTRY = ["-m", "w2s_core.supervision"]
# A lock found taken is tried again this often, this many times, before a new supervisor steps back:
# `holder` probes by taking the lock for an instant, and a probe must not turn a supervisor away.
ACQUIRE_TRIES, ACQUIRE_PAUSE_S = 5, 0.1
CONFIRM_POLL_S = 0.1  # how often `cancel_jobs` looks whether the supervisor took its request


def holder(root: Path) -> dict | None:
    """The supervisor holding the writer lock of `root` ({pid, since}), or None."""
    return WriterLock(root).holder()


def spawn(root: Path, parallel: int = 1, jobs_per_gpu: int = 1) -> int:
    """Start a supervisor in its own session (it outlives this process and the terminal); returns its pid."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOG_NAME, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, *ENTRY, str(root), "--parallel", str(parallel), "--jobs-per-gpu", str(jobs_per_gpu)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
            start_new_session=True,
        )
    return proc.pid


def open_store_if_idle(root: Path) -> None:
    """Create or upgrade `root`'s database now, holding the writer lock, when no supervisor runs: a
    damaged or newer database is then reported to the submitter before anything is queued, and a
    follower finds the database there. A running supervisor has it open already."""
    lock = WriterLock(root)
    if not lock.try_acquire():
        return
    try:
        Store.open(root).close()
    finally:
        lock.release()


def resume_parallel(active: list[JobRow]) -> int:
    """CPU slots for a supervisor taking over queued work: what that work was submitted with."""
    return max([(j["launch"] or {}).get("parallel", 1) for j in active], default=1)


def ensure_running(root: Path, parallel: int = 1, jobs_per_gpu: int = 1) -> tuple[int | None, bool]:
    """A supervisor for `root`: (pid, started_now). Post requests *before* calling this (see `serve`)."""
    current = holder(root)
    if current is not None:
        return current.get("pid"), False
    return spawn(root, parallel, jobs_per_gpu), True


def serve(root: Path, slots: list[Slot], echo: Callable[[str], None]) -> bool:
    """Supervise `root` until idle if nobody else does; False if another supervisor holds the lock.

    After letting go of the lock it looks at the inbox once more: a request posted just before
    the release found the lock taken and counts on us (posters write first, then check the lock).
    """
    lock = WriterLock(root)
    served = False
    while _acquire(lock, patient=not served):
        served = True
        try:
            with Store.open(root) as store:
                Supervisor(store, slots, echo).run()
        finally:
            lock.release()
        if not pending(root):
            break
    return served


def _acquire(lock: WriterLock, patient: bool) -> bool:
    """Take the lock; `patient`: try a few times first, as a `holder` probe holds it for an instant."""
    for attempt in range(ACQUIRE_TRIES if patient else 1):
        if attempt:
            time.sleep(ACQUIRE_PAUSE_S)
        if lock.try_acquire():
            return True
    return False


def cancel_jobs(root: Path, job_hashes: list[str], timeout: float) -> None:
    """Cancel jobs through the running supervisor, waiting until it has (their process trees are then
    gone), or here, holding the writer lock, when no supervisor runs."""
    if holder(root) is not None:
        request_id = post(root, Cancel(jobs=job_hashes))
        deadline = time.time() + timeout
        while is_pending(root, request_id):
            if time.time() > deadline:
                raise W2SError(
                    f"The supervisor did not confirm the cancel within {timeout} s; it is still "
                    f"queued ({root / INBOX / request_id}.json). See {root / LOG_NAME}."
                )
            time.sleep(CONFIRM_POLL_S)
        return
    lock = WriterLock(root).acquire("cancel")
    try:
        with Store.open(root) as store:
            Supervisor(store, []).apply(Cancel(jobs=job_hashes))
    finally:
        lock.release()


def _echo(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m w2s_core.supervision", description="Run a results directory's queue.")
    p.add_argument("results_dir")
    p.add_argument("--parallel", type=int, default=1, help="CPU jobs at once when there is no GPU")
    p.add_argument("--jobs-per-gpu", type=int, default=1)
    args = p.parse_args(argv)
    root = Path(args.results_dir).resolve()
    _echo(f"supervisor pid {os.getpid()} for {root}")
    try:
        serve(root, device_slots(args.parallel, args.jobs_per_gpu), _echo)
    except W2SError as exc:
        _echo(f"error: {exc}")
        return exc.exit_code
    _echo("idle: nothing queued or running; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
