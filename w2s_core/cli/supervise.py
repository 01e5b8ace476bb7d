"""Handing work to a supervisor, the one process that writes a results folder while work is queued.

`w2s run` and `w2s retry` drop their request into the inbox and make sure a background supervisor
is running (it outlives the terminal); with --detach they return at once, else they follow the run
from the store until it is over (`w2s_core.supervision.follow`), so a dropped SSH connection stops
only the following. `resume` starts a supervisor for work left without one (`w2s queue`, `w2s runs`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from w2s_core import supervision as sv
from w2s_core.spec.recipe import Recipe
from w2s_core.supervision.follow import RETRY, SUBMIT
from w2s_core.supervision.provenance import provenance, snapshot_code


@dataclass(frozen=True)
class QueueOptions:
    detach: bool  # leave the work to a background supervisor
    parallel: int  # CPU slots when there is no GPU
    jobs_per_gpu: int = 1
    cancel_on_interrupt: bool = False  # the first Ctrl-C cancels the run's jobs (else it stops following)


@dataclass(frozen=True)
class Detached:
    """A request left to a background supervisor."""

    request_id: str
    pid: int | None
    started: bool  # the supervisor was started for it (else it was already running)
    log: Path


def _request(root: Path) -> dict:
    """What every queued request carries: the command line and a snapshot of the code version."""
    return {"argv": sys.argv, "cwd": os.getcwd(), "provenance": provenance(), "code": snapshot_code(root)}


def submit_request(root: Path, recipe: Recipe, force: bool, parallel: int, launch: dict | None = None) -> sv.Submit:
    """`launch`: [launch] keys the command line overrides (`--executor`), applied by the supervisor."""
    return sv.Submit(
        recipe_path=str(Path(recipe.path).resolve()),
        recipe_text=recipe.text,
        force=force,
        parallel=parallel,
        launch=dict(launch or {}),
        **_request(root),
    )


def retry_request(root: Path, job_hashes: set[str]) -> sv.Retry:
    return sv.Retry(jobs=sorted(job_hashes), **_request(root))


def supervise(
    root: Path, what: str, request: sv.Submit | sv.Retry, options: QueueOptions, name: str | None = None
) -> Detached | sv.Outcome:
    """Queue `request` for a background supervisor (started if none runs); with --detach return at
    once, else follow the run it makes until it is over (`name`: the recipe's, for the Ctrl-C hint)."""
    sv.open_store_if_idle(root)  # a damaged or newer database is said before anything is queued
    request_id = sv.post(root, request)
    pid, started = sv.ensure_running(root, options.parallel, options.jobs_per_gpu)
    if options.detach:
        return Detached(request_id, pid, started, root / sv.LOG_NAME)
    how = "started supervisor" if started else "queued behind supervisor"
    print(
        f"{what}: {how} pid {pid} (log {root / sv.LOG_NAME}); following it here. Ctrl-C stops following "
        "(the jobs go on); `w2s follow` re-attaches.",
        flush=True,
    )
    return sv.attach(
        root,
        request_id=request_id,
        kind=SUBMIT if isinstance(request, sv.Submit) else RETRY,
        name=name,
        cancel_on_interrupt=options.cancel_on_interrupt,
        parallel=options.parallel,
        jobs_per_gpu=options.jobs_per_gpu,
    )


def resume(root: Path, active: list[dict]) -> tuple[dict | None, int | None]:
    """The supervisor of `root` ({pid, since} or None), and the pid of one started now: when none was
    running but work is queued or running (its supervisor was killed, or the machine rebooted), one
    is started to re-attach to live jobs and record lost ones."""
    holder = sv.holder(root)
    if holder is None and (active or sv.pending(root)) and os.access(root, os.W_OK):
        pid, _ = sv.ensure_running(root, sv.resume_parallel(active))
        return {"pid": pid}, pid
    return holder, None
