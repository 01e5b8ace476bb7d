"""Why a job failed, in one paragraph: from its exit status, the signal that ended it, and its log.

A job ends with the status `sh` or Popen reports: a job of one process, whose trainer is started
directly (launch_config.py), with its trainer's own (its exit code; a shell status 128+N, or Popen's -N,
when signal N killed it); one under `accelerate launch` with exit code 1 and the trainer's signal named
in the log when a signal killed the trainer, and 128+N or -N when the signal killed the launcher or the
wrapper itself. `exit_signal` reads all of them. A job whose process ended while no supervisor watched,
and that left no exit record, is LOST. A Slurm job that
Slurm ended itself has its end state as its status (SLURM_REASONS): each reads as the local executor's
words for the same end ("out of memory", "killed by SIGTERM", "lost"), with Slurm's state named.

Not every end is a failure: a trainer that stopped on SIGTERM/SIGUSR1 after saving a checkpoint, or a
job Slurm preempted, should run again (`wants_requeue`).
"""

from __future__ import annotations

import re
from pathlib import Path

from w2s_core.jobdir import EXIT_REQUEUE, JobDir, tail_lines
from w2s_core.supervision import processes

LOST = "lost"
LOG_TAIL_LINES = 15  # shown with every failure
SCAN_LINES = 200  # searched for an out-of-memory report
# How an allocation failure reads in a job's log (host memory, CUDA, its libraries, NCCL), as recorded
# from real logs (tests/test_oom_markers.py): torch's allocator ("CUDA out of memory. Tried to allocate"),
# a kernel or a CUDA API call ("CUDA error: out of memory"), cuBLAS/cuDNN/cuSOLVER failing to get their
# workspace ("CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), NCCL's buffers
# ("NCCL WARN Cuda failure 'out of memory'", "Cuda failure 2 'out of memory'", and a host-side
# "ncclSystemError ... Cannot allocate memory"), Python's MemoryError and the C library's ENOMEM.
OOM_MARKERS = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "OutOfMemoryError",
    "STATUS_ALLOC_FAILED",
    "can't allocate memory",
    "MemoryError",
    "Cannot allocate memory",
)
OOM_PATTERNS = (re.compile(r"Cuda failure (\d+ )?'out of memory'"),)  # NCCL quotes CUDA's error string
# Slurm's end states (sacct's State) that are not an exit status of the job's own command
SLURM_REASONS = {
    "OUT_OF_MEMORY": (
        "out of memory (Slurm: OUT_OF_MEMORY, the job went over its memory limit); lower minibatch_size "
        "or max_length, or raise [launch] mem_gb"
    ),
    "TIMEOUT": (
        "killed by SIGTERM at Slurm's time limit (Slurm: TIMEOUT) before it stopped with a checkpoint; "
        "raise [launch] time, or set [train] checkpoint_every"
    ),
    "PREEMPTED": "killed by SIGTERM: Slurm preempted it (Slurm: PREEMPTED) and did not requeue it",
    "CANCELLED": "killed by SIGTERM: cancelled in Slurm, not by w2s (Slurm: CANCELLED, e.g. `scancel`)",
    "DEADLINE": "killed by SIGTERM: Slurm's deadline passed (Slurm: DEADLINE)",
    "NODE_FAIL": "lost: its node failed (Slurm: NODE_FAIL); `w2s retry` runs it again",
    "BOOT_FAIL": "lost: its node failed to boot (Slurm: BOOT_FAIL); `w2s retry` runs it again",
    "FAILED": "failed in Slurm before its command recorded an exit status (Slurm: FAILED)",
    "COMPLETED": "lost: Slurm reports it completed, but it left no exit record and no result",
}
REQUEUE_STATES = ("PREEMPTED",)  # Slurm took the job away: not its fault, so it runs again
STOPPED_FOR_GOOD = ("CANCELLED", "DEADLINE")  # someone cancelled it in Slurm: never run again unasked
TRAINER_ERROR = "error: "  # how the trainer starts the line that explains its own failure
TAIL_HEADER = "\n--- log tail ---\n"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(tail_lines(path, lines))


def failure_reason(path: Path) -> str:
    """The trainer's own `error:` line when it wrote one (the launcher's traceback is noise), else the log tail."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    errors = [line[len(TRAINER_ERROR) :] for line in lines if line.startswith(TRAINER_ERROR)]
    return errors[-1] if errors else log_tail(path, 5)


def exit_signal(status: int | str | None, log: str) -> int | None:
    """The signal that ended a job: from its status (Popen -N, shell 128+N: a direct job's trainer, or the
    wrapper, or the launcher) or, for a trainer under `accelerate launch` (status 1), from its log."""
    if isinstance(status, int) and status < 0:
        return -status
    if isinstance(status, int) and 128 < status <= 128 + 64:
        return status - 128
    return processes.signal_in_log(log) if status not in (0, None, LOST) else None


def out_of_memory(log: str) -> bool:
    """Whether `log` reports an allocation failure (OOM_MARKERS, OOM_PATTERNS)."""
    return any(marker in log for marker in OOM_MARKERS) or any(p.search(log) for p in OOM_PATTERNS)


def diagnose(status: int | str, sig: int | None, log_path: Path, hint: str = "") -> str:
    """One paragraph on why a job failed (then `hint`: where else to look), then the last lines of its log."""
    tail = log_tail(log_path, SCAN_LINES)
    if out_of_memory(tail):
        why = "out of memory (the log reports an allocation failure); lower minibatch_size or max_length"
    elif isinstance(status, str) and status in SLURM_REASONS:
        why = SLURM_REASONS[status]
    elif sig == 9:
        why = (
            "killed by SIGKILL (signal 9) that w2s did not send: most likely the kernel's out-of-memory "
            "killer (see `dmesg`), or someone ran kill -9"
        )
    elif sig is not None:
        why = f"killed by {processes.signal_name(sig)} (signal {sig})"
    elif status == LOST:
        why = (
            "lost: its process ended while no supervisor was watching and left no exit record "
            "(the machine rebooted, or its wrapper was killed)"
        )
    else:
        why = f"exited with code {status}: {failure_reason(log_path)}"
    return f"{why}{hint}{TAIL_HEADER}{log_tail(log_path)}"


def headline(error: str) -> str:
    """The paragraph of a diagnosis without its log tail."""
    return error.split(TAIL_HEADER)[0]


def wants_requeue(status: int | str, folder: JobDir) -> bool:
    """Whether an ended job should be queued again rather than recorded failed: its trainer stopped on
    SIGTERM/SIGUSR1 after saving a checkpoint (exit EXIT_REQUEUE: a direct job's own status, while
    `accelerate launch` reports it as 1, hence the trainer's marker file, `JobDir.wants_requeue`, read
    either way), or Slurm preempted it without requeueing it."""
    if status == 0 or status in STOPPED_FOR_GOOD:
        return False
    return status == EXIT_REQUEUE or status in REQUEUE_STATES or folder.wants_requeue()
