"""Start and stop runs from the TUI without tying them to it: the app may quit, the runs go on.

A launch is `w2s run --detach RECIPE`, handing the work to the core's background supervisor, in its
own session with its output in a file under the results directory; a cancel is `w2s cancel JOB`.
The TUI never writes the store itself: the supervisor is its only writer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.status import ACTIVE


def _w2s(results_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results_dir), *args]


def launch(recipe: Path, results_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start `w2s run --detach RECIPE`; returns its process and the file its output goes to."""
    logs = results_dir / "launches"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe.stem}.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            _w2s(results_dir, "run", "--detach", str(recipe.resolve())),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, log_path


def cancel(job: dict, results_dir: Path) -> str:
    """Stop a queued or running job (its whole process tree); raises W2SError when it cannot."""
    if job["status"] not in ACTIVE:
        raise W2SError(f"job {job['hash'][:10]} is {job['status']}; only queued or running jobs can be cancelled")
    out = subprocess.run(_w2s(results_dir, "cancel", job["hash"]), capture_output=True, text=True)
    if out.returncode != 0:
        raise W2SError(f"`w2s cancel {job['hash'][:10]}` failed: {(out.stderr or out.stdout).strip()}")
    return f"cancelled {job['hash'][:10]}"
