"""Why a job failed, in one paragraph: from its exit status, the signal that ended it, and its log.

A job ends with the status `sh` or Popen reports (a shell status 128+N or Popen's -N for signal N),
or under `accelerate launch` with exit code 1 and the trainer's signal named in the log; a job whose
process ended while no supervisor watched, and that left no exit record, is LOST.
"""

from __future__ import annotations

from pathlib import Path

from w2s_core.jobdir import tail_lines
from w2s_core.supervision import processes

LOST = "lost"
LOG_TAIL_LINES = 15  # shown with every failure
SCAN_LINES = 200  # searched for an out-of-memory report
OOM_MARKERS = (
    "CUDA out of memory",
    "OutOfMemoryError",
    "can't allocate memory",
    "MemoryError",
    "Cannot allocate memory",
)
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
    """The signal that ended a job: from its status (Popen -N, shell 128+N) or, under accelerate, its log."""
    if isinstance(status, int) and status < 0:
        return -status
    if isinstance(status, int) and 128 < status <= 128 + 64:
        return status - 128
    return processes.signal_in_log(log) if status not in (0, None, LOST) else None


def diagnose(status: int | str, sig: int | None, log_path: Path) -> str:
    """One paragraph on why a job failed, then the last lines of its log."""
    tail = log_tail(log_path, SCAN_LINES)
    if any(marker in tail for marker in OOM_MARKERS):
        why = "out of memory (the log reports an allocation failure); lower minibatch_size or max_length"
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
    return f"{why}{TAIL_HEADER}{log_tail(log_path)}"


def headline(error: str) -> str:
    """The paragraph of a diagnosis without its log tail."""
    return error.split(TAIL_HEADER)[0]
