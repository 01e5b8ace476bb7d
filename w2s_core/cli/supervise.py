"""Handing work to a supervisor, the one process that writes a results folder while work is queued.

`w2s run` and `w2s retry` either become the supervisor here (take the writer lock, apply the request,
work the queue until it is empty) or, with --detach, drop the request into the inbox and make sure a
background supervisor is running. `w2s cancel` asks the running supervisor, or cancels directly
when there is none. This is the only CLI module that talks to a supervisor (`w2s_core.supervision`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from w2s_core import supervision as sv
from w2s_core.errors import W2SError
from w2s_core.spec.recipe import Recipe
from w2s_core.status import RETRYABLE
from w2s_core.store import Store
from w2s_core.supervision import requests
from w2s_core.supervision.lock import WriterLock
from w2s_core.supervision.provenance import provenance, snapshot_code

CONFIRM_POLL_S = 0.1  # how often `w2s cancel` looks whether the supervisor took its request


@dataclass(frozen=True)
class QueueOptions:
    detach: bool  # leave the work to a background supervisor
    parallel: int  # CPU slots when there is no GPU
    jobs_per_gpu: int = 1


@dataclass(frozen=True)
class Detached:
    """A request left to a background supervisor."""

    request_id: str
    pid: int | None
    started: bool  # the supervisor was started for it (else it was already running)
    log: Path


@dataclass(frozen=True)
class Finished:
    """A request worked here until the queue was empty."""

    run_id: int
    failed: bool  # some job of the run failed or was skipped


def _request(root: Path) -> dict:
    """What every queued request carries: the command line and a snapshot of the code version."""
    return {"argv": sys.argv, "cwd": os.getcwd(), "provenance": provenance(), "code": snapshot_code(root)}


def submit_request(root: Path, recipe: Recipe, force: bool, parallel: int) -> sv.Submit:
    return sv.Submit(recipe_path=str(Path(recipe.path).resolve()), recipe_text=recipe.text, force=force,
                     parallel=parallel, **_request(root))


def retry_request(root: Path, job_hashes: set[str]) -> sv.Retry:
    return sv.Retry(jobs=sorted(job_hashes), **_request(root))


def supervise(root: Path, what: str, request: sv.Submit | sv.Retry, options: QueueOptions) -> Detached | Finished:
    """Apply `request` and work the queue: in the background with --detach, else here until done."""
    if options.detach:
        request_id = sv.post(root, request)
        pid, started = sv.ensure_running(root, options.parallel, options.jobs_per_gpu)
        return Detached(request_id, pid, started, root / sv.LOG_NAME)
    lock = WriterLock(root).acquire(what)
    try:
        with Store.open(root) as store:
            sup = sv.Supervisor(store, sv.device_slots(options.parallel, options.jobs_per_gpu))
            run_id = sup.apply(request)
            sup.run()
            failed = any(j["status"] in RETRYABLE for j in store.jobs(run_id=run_id))
    finally:
        lock.release()
    if sv.pending(root):  # posted while we held the lock: hand them to a supervisor
        sv.ensure_running(root, options.parallel, options.jobs_per_gpu)
    return Finished(run_id, failed)


def resume(root: Path, active: list[dict]) -> tuple[dict | None, int | None]:
    """The supervisor of `root` ({pid, since} or None), and the pid of one started now: when none was
    running but work is queued or running (its supervisor was killed, or the machine rebooted), one
    is started to re-attach to live jobs and record lost ones."""
    holder = sv.holder(root)
    if holder is None and (active or sv.pending(root)) and os.access(root, os.W_OK):
        pid, _ = sv.ensure_running(root, sv.resume_parallel(active))
        return {"pid": pid}, pid
    return holder, None


def pending_requests(root: Path) -> int:
    return len(sv.pending(root))


def rejected_requests(root: Path) -> list[Path]:
    """Request files the supervisor could not apply, oldest first."""
    return requests.rejected(root)


def log_path(root: Path) -> Path:
    return root / sv.LOG_NAME


def cancel(root: Path, job_hashes: list[str], timeout: float) -> None:
    """Cancel jobs: through the running supervisor (waiting until it has), or here when there is none."""
    if sv.holder(root) is not None:
        request_id = sv.post(root, sv.Cancel(jobs=job_hashes))
        deadline = time.time() + timeout
        while sv.is_pending(root, request_id):
            if time.time() > deadline:
                raise W2SError(f"The supervisor did not confirm the cancel within {timeout} s; it is still "
                               f"queued ({root / sv.INBOX / request_id}.json). See {log_path(root)}.")
            time.sleep(CONFIRM_POLL_S)
        return
    lock = WriterLock(root).acquire("cancel")
    try:
        with Store.open(root) as store:
            sv.Supervisor(store, []).apply(sv.Cancel(jobs=job_hashes))
    finally:
        lock.release()
