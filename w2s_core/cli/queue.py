"""`w2s queue` (what is queued or running, and who runs it) and `w2s cancel`."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from w2s_core.cli import supervise
from w2s_core.cli.output import json_text, stamp
from w2s_core.cli.targets import ordered, select_jobs
from w2s_core.errors import InputError
from w2s_core.status import ACTIVE, JobStatus
from w2s_core.store import DB_NAME, Store
from w2s_core.supervision import LOG_NAME, cancel_jobs, pending
from w2s_core.supervision.requests import rejected


def resume_and_say(root: Path, active: list[dict]) -> dict | None:
    """The supervisor of `root`, started if work was left without one (said on stderr)."""
    holder, started = supervise.resume(root, active)
    if started is not None:
        print(f"no supervisor was running: started pid {started} to re-attach {len(active)} job(s)", file=sys.stderr)
    return holder


def _job_line(j: dict) -> str:
    who = f"{j['kind']} {j['model']}" + (f" <- {j['weak_model']} ({j['loss']})" if j["weak_model"] else "")
    running = j["status"] == JobStatus.RUNNING
    where = f"{j['device']} pid {j['pid']} since {stamp(j['started_at'])}" if running else ""
    if running and j.get("executor") == "slurm":  # Slurm runs it: its job id and state, not a pid
        where = (
            f"Slurm job {j['slurm_job_id']} {j['slurm_state'] or '?'} on {j['device']} since {stamp(j['started_at'])}"
        )
    if j["status"] == JobStatus.QUEUED and j.get("wait_reason"):  # it cannot be placed yet (placement.py)
        where = f"waits: {j['wait_reason']}"
    return f"  {j['hash'][:10]}  {j['status']:<8} run {j['run_id']:<4} {who:<40} {where}"


def cmd_queue(args: Namespace) -> int:
    root = Path(args.results_dir).expanduser().resolve()
    if not (root / DB_NAME).is_file():
        raise InputError(
            f"There is no w2s results database at {root / DB_NAME}; nothing was ever queued there. "
            "Pass the results directory `w2s run` wrote to."
        )
    with Store.open(args.results_dir, readonly=True) as store:
        active = store.jobs(status=ordered(ACTIVE))
    holder = resume_and_say(root, active)
    requests = len(pending(root))
    if args.json:
        print(json_text({"supervisor": holder, "pending_requests": requests, "jobs": active}))
        return 0
    print(
        f"supervisor: {'pid ' + str(holder['pid']) if holder else 'none (idle)'}; "
        f"{requests} request(s) waiting; {len(active)} job(s) queued or running"
    )
    set_aside = rejected(root)
    if set_aside:
        print(
            f"{len(set_aside)} request(s) could not be applied (the latest: {set_aside[-1]}); "
            f"the reason is in {root / LOG_NAME}"
        )
    for j in active:
        print(_job_line(j))
    return 0


def cmd_cancel(args: Namespace) -> int:
    root = Path(args.results_dir).expanduser().resolve()
    with Store.open(args.results_dir, readonly=True) as store:
        job_hashes = [j["hash"] for j in select_jobs(store, args.target, ACTIVE, "cancel")]
    cancel_jobs(root, job_hashes, args.timeout)  # through the running supervisor, or here if none
    print(f"cancelled {len(job_hashes)} job(s); their process trees are gone")
    return 0
