"""Slurm's state of a submitted job: squeue's while it is queued or running, else submitit's `job.state`
(sacct), else scontrol's.

submitit reads every followed job's state with one `sacct` call, at most every `poll_s` here (its own
watcher waits up to ten minutes between calls on a long job). sacct may not know a job (just
submitted, or a cluster without accounting storage), and lags squeue by a few seconds (slurmdbd records
a start late): so `squeue` says the state of a job still in
the queue, and `scontrol show job` that of one that ended in the last few minutes (Slurm's MinJobAge).
A job none of them knows has left Slurm: the executor then reads its exit record (slurm.py).

PREEMPTED is read again in squeue: with PreemptMode=REQUEUE the job is back in the queue (it will run
again, and is followed to that run), otherwise it ended there.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

# Slurm job states (squeue's and sacct's names) of a job that will still run, or runs now
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "SPECIAL_EXIT",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)
# ... and of a job that ended
ENDED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
    }
)
UNKNOWN = "UNKNOWN"
RUNNING = "RUNNING"
Run = Callable[..., subprocess.CompletedProcess]


def poll_seconds() -> float:
    """How often Slurm is asked ($W2S_SLURM_POLL_S, default 5): the supervisor looks five times a second."""
    return float(os.environ.get("W2S_SLURM_POLL_S", "5"))


def base_state(raw: Any) -> str:
    """The first word of a state, upper-case ("CANCELLED by 1000": CANCELLED); UNKNOWN for none."""
    words = str(raw or "").split()
    return words[0].upper().rstrip("+") if words else UNKNOWN


class SlurmStates:
    """Reads the state of followed jobs, each at most every `poll_s` (`force`: now)."""

    def __init__(self, run: Run = subprocess.run, poll_s: float | None = None) -> None:
        self.run = run
        self.poll_s = poll_seconds() if poll_s is None else poll_s

    def state(self, attempt: Any, force: bool = False) -> str:
        """The job's state (an ACTIVE_STATES or ENDED_STATES name, or UNKNOWN); sets `attempt.state`,
        and `attempt.nodes` when Slurm named them."""
        now = time.monotonic()
        if force or attempt.read_at is None or now - attempt.read_at >= self.poll_s:
            attempt.state, nodes = self.read(attempt.job, attempt.job_id)
            attempt.nodes = nodes or attempt.nodes
            attempt.read_at = now
        return attempt.state

    def read(self, job: Any, job_id: str) -> tuple[str, str | None]:
        """(state, nodes) from submitit, then squeue, then scontrol."""
        try:
            state = base_state(job.state)
        except Exception:  # submitit bypasses sacct's errors itself; anything else must not stop the loop
            state = UNKNOWN
        if state in ENDED_STATES and state != "PREEMPTED":
            return state, _nodes(job)
        # A job still in the queue: squeue is authoritative. sacct lags it (slurmdbd records a start a
        # few seconds late), so sacct's PENDING after squeue's RUNNING would read as a requeue.
        queued = self.squeue(job_id)
        if queued is not None:
            return queued
        if state in ACTIVE_STATES:
            return self.scontrol(job_id) or (state, _nodes(job))
        return self.scontrol(job_id) or (state, None)

    def squeue(self, job_id: str) -> tuple[str, str | None] | None:
        """(state, nodes) of a job still in Slurm's queue; None when squeue does not list it."""
        out = self._call(["squeue", "-h", "-j", job_id, "-o", "%T|%N"])
        for line in out.splitlines():
            state, _, nodes = line.partition("|")
            if state.strip():
                return base_state(state), nodes.strip() or None
        return None

    def scontrol(self, job_id: str) -> tuple[str, str | None] | None:
        """(state, nodes) of a job the controller still remembers (ended in the last MinJobAge seconds)."""
        out = self._call(["scontrol", "-o", "show", "job", job_id])
        fields = dict(word.split("=", 1) for word in out.split() if "=" in word)
        if "JobState" not in fields:
            return None
        nodes = fields.get("NodeList")
        return base_state(fields["JobState"]), None if nodes in (None, "", "(null)") else nodes

    def _call(self, command: list[str]) -> str:
        try:
            out = self.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout if out.returncode == 0 else ""


def _nodes(job: Any) -> str | None:
    """The nodes sacct listed for the job (submitit's last reading, no new call), if any."""
    try:
        info = job.get_info(mode="cache")
    except Exception:  # a job object without sacct information (or an older submitit)
        return None
    nodes = info.get("NodeList") if isinstance(info, dict) else None
    return None if nodes in (None, "", "None assigned") else nodes
