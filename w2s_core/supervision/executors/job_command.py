"""What runs inside a Slurm job: the job's command, its log, its exit record, and the signals Slurm sends.

`JobCommand` is submitit's `CommandFunction` for one w2s job, pickled by submitit when the job is
submitted and called by `python -m submitit.core._submit` on each of the job's nodes (one task per
node). It differs from CommandFunction in three ways, each for a reason:

- output goes to the job's log.txt (appended), not into memory: a training log can be long, and the
  supervisor reads the log for its diagnosis exactly as it does for a local job;
- the first node writes the exit record (`exit_status`, the local wrapper's file, same meaning: a shell
  status, 128+N for signal N), so the supervisor learns the command's own status and not only Slurm's;
  and at the start of each run it clears what an earlier run of the same Slurm job wrote (Slurm requeued
  it: preemption, `scontrol requeue`), as the supervisor does before a local attempt: events.jsonl is cut
  at the checkpoint's step (`JobDir.clear_outputs`), the log is kept;
- signals: Slurm sends SIGUSR1 before the time limit (`--signal`) and SIGTERM on cancel, requeue and
  preemption, to every process of the job. The trainer handles both: it finishes its optimiser step,
  saves a checkpoint and exits EXIT_REQUEUE. `accelerate launch` does not (SIGUSR1 would kill it, and
  SIGTERM kill it before its trainer is done), so the command (the launcher, or the trainer itself for a
  one-process job) is started with both ignored, and the trainer sets its own handlers. submitit's own
  SIGUSR1 handler (checkpoint the pickled function, `scontrol requeue` the job) is replaced by one that
  passes the signal on to the trainer: w2s, not submitit, decides that the job runs again (it submits it
  anew once its trainer stopped with a checkpoint).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil
from submitit.core.utils import FailedJobError
from submitit.helpers import CommandFunction

from w2s_core.jobdir import EXIT_REQUEUE, JobDir

SHIELDED = (signal.SIGUSR1, signal.SIGTERM)  # ignored by the launcher; the trainer handles them itself


def _shield() -> None:
    """In the launcher's process, before exec: ignore the signals meant for the trainer."""
    for sig in SHIELDED:
        signal.signal(sig, signal.SIG_IGN)


def shell_status(returncode: int) -> int:
    """Popen's -N (killed by signal N) as a shell status 128+N, the local wrapper's convention."""
    return 128 - returncode if returncode < 0 else returncode


def restart_outputs(folder: JobDir) -> None:
    """Clear what an earlier run of this job wrote, keeping its checkpoint and its log (appended to)."""
    kept = folder.log.with_name(folder.log.name + ".kept")
    if folder.log.exists():
        os.replace(folder.log, kept)
    try:
        folder.clear_outputs()
    finally:
        if kept.exists():
            os.replace(kept, folder.log)


class JobCommand(CommandFunction):
    """One w2s job's command, run in its folder with the code snapshot first on PYTHONPATH."""

    def __init__(self, command: list[str], job_dir: str, env: dict[str, str], code: str | None = None) -> None:
        super().__init__(command, verbose=False, cwd=job_dir)
        self.job_dir = job_dir
        self.extra_env = dict(env)  # only what w2s adds: the Slurm job inherits the submitter's environment
        self.code = code
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_proc"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _proc=None)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, **self.extra_env)
        if self.code:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.code, env.get("PYTHONPATH")]))
        return env

    def __call__(self) -> int:
        folder = JobDir(Path(self.job_dir))
        lead = os.environ.get("SLURM_NODEID", "0") == "0"  # the first node keeps the job folder
        if lead:
            restart_outputs(folder)
        before = {sig: signal.signal(sig, self._pass_on) for sig in SHIELDED}
        try:
            status = self._run(folder)
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
        if lead:
            tmp = folder.exit_status.with_name(folder.exit_status.name + ".tmp")
            tmp.write_text(f"{status}\n")
            os.replace(tmp, folder.exit_status)
        if status and status != EXIT_REQUEUE and not folder.wants_requeue():
            raise FailedJobError(f"w2s job command exited with status {status}; its log: {folder.log}")
        return status

    def _run(self, folder: JobDir) -> int:
        """Run the command with its output appended to the job's log; its shell-style status."""
        with open(folder.log, "a") as log:
            log.write(f"--- w2s: Slurm job {os.environ.get('SLURM_JOB_ID', '?')} on {socket.gethostname()} ---\n")
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.environment(),
                preexec_fn=_shield,
            )
            return shell_status(self._proc.wait())

    def _pass_on(self, signum: int, frame: object = None) -> None:
        """Give the trainer Slurm's signal (it may have had it from Slurm already: once more is harmless).
        The child is the trainer itself for a one-process job, `accelerate launch` and its trainers otherwise."""
        if self._proc is None:
            return
        try:
            child = psutil.Process(self._proc.pid)
            children = [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                child.send_signal(signum)
            except psutil.NoSuchProcess:
                pass
