"""Start and stop runs from the TUI without tying them to it: the app may quit, the runs go on.

A launch is `w2s run RECIPE` (with --detach, handing the work to the core's background supervisor,
when the installed core has it) in its own session, so closing the terminal or the app does not
signal it, with its output in a file under the results directory. Cancelling asks `w2s cancel` when
the core has it, else terminates the job's process group by the pid the store recorded.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from w2s_core import cli
from w2s_core.errors import W2SError


def _w2s(results_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results_dir), *args]


def launch(recipe: Path, results_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start `w2s run RECIPE` detached; returns its process and the file its output goes to."""
    logs = results_dir / "launches"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{recipe.stem}.log"
    detach = ["--detach"] if "--detach" in _subcommand("run")._option_string_actions else []
    with open(log_path, "w") as out:
        proc = subprocess.Popen(_w2s(results_dir, "run", *detach, str(recipe.resolve())), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, log_path


def _subcommand(name: str) -> argparse.ArgumentParser | None:
    """The core CLI's parser for `name`, or None when this version of the core has no such command."""
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    return sub.choices.get(name)


def cancel(job: dict, results_dir: Path) -> str:
    """Stop a queued or running job; returns what was done, raises W2SError when it cannot."""
    if job["status"] not in ("queued", "running"):
        raise W2SError(f"job {job['hash'][:10]} is {job['status']}; only queued or running jobs can be cancelled")
    if _subcommand("cancel") is not None:
        out = subprocess.run(_w2s(results_dir, "cancel", job["hash"]), capture_output=True, text=True)
        if out.returncode != 0:
            raise W2SError(f"`w2s cancel {job['hash'][:10]}` failed: {(out.stderr or out.stdout).strip()}")
        return f"cancelled {job['hash'][:10]}"
    if job["status"] != "running" or not job.get("pid"):
        raise W2SError(f"job {job['hash'][:10]} has not started; this w2s has no `w2s cancel` to dequeue it")
    try:
        os.killpg(job["pid"], signal.SIGTERM)
    except ProcessLookupError:
        raise W2SError(f"job {job['hash'][:10]}'s process {job['pid']} is already gone") from None
    except PermissionError:
        raise W2SError(f"not allowed to signal job {job['hash'][:10]}'s process {job['pid']}") from None
    return f"sent SIGTERM to job {job['hash'][:10]} (process group {job['pid']})"
