"""Job processes that outlive their manager: launch in their own session, recognise them later, kill whole trees.

A job is identified by pid *and* process start time, so a recycled pid is never mistaken for it.
The job runs under a tiny `sh` wrapper that writes its exit status to a file: a manager that
restarts after the job ended still learns how it ended (no file: the job was lost).

Cost (issue 14): finding a job's tree reads every process on the machine (its process group is not
indexed), so the supervisor's poll must not do it every tick for every job: whether a job runs is
`Popen.poll` (or one pid and start-time check, `alive`) per tick, and its tree is walked every
TREE_WALK_S (`Attempt.remember`), and in full whenever it is killed. The walk itself asks the kernel
for each pid's group (`os.getpgid`, one syscall) and builds psutil objects only for the job's own.
`benchmarks/supervision.py --tick` measures a tick before and after.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

# `sh` runs the command, then records its status atomically; a signal shows as 128 + N.
WRAPPER = (
    'exit_file="$1"; shift; "$@"; code=$?; '
    'echo "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"; exit "$code"'
)


TREE_WALK_S = 5.0  # how often a running job's process tree is walked (module docstring)


def kill_grace() -> float:
    """Seconds a job gets to exit after SIGTERM before SIGKILL ($W2S_KILL_GRACE_S, default 5)."""
    return float(os.environ.get("W2S_KILL_GRACE_S", "5"))


@dataclass(frozen=True)
class Identity:
    pid: int
    pgid: int
    start: float  # psutil create_time, seconds since the epoch


def launch(
    command: list[str], log_path: Path, exit_path: Path, env: dict, cwd: Path
) -> tuple[subprocess.Popen, Identity]:
    """Start `command` in a new session (it survives the terminal), output to `log_path`."""
    exit_path.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["sh", "-c", WRAPPER, "w2s-job", str(exit_path), *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        start = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:  # already gone; the exit file or Popen says how
        start = 0.0
    return proc, Identity(proc.pid, proc.pid, start)


def process(ident: Identity) -> psutil.Process | None:
    """The live process with this pid and start time, or None (gone, a zombie, or a recycled pid)."""
    try:
        proc = psutil.Process(ident.pid)
        if abs(proc.create_time() - ident.start) > 0.05 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(ident: Identity) -> bool:
    return process(ident) is not None


def group_members(pgid: int) -> list[psutil.Process]:
    """Every live process still in the job's process group (children the launcher orphaned included)."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pgid:  # one syscall; a psutil object only for the group's own
                continue
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return members


def _group_recycled(ident: Identity) -> bool:
    """Whether the job's group id now names someone else's group (its leader's pid was reused).

    Linux never hands out a pid still used as a process-group id, so a group without a new leader
    is still the job's, even long after the job's own process died.
    """
    try:
        leader = psutil.Process(ident.pgid)
        return abs(leader.create_time() - ident.start) > 0.05
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def tree(ident: Identity) -> list[psutil.Process]:
    """The job's processes: its group, plus descendants that left the group (own session)."""
    if ident.pid <= 0:  # never recorded (it died before its launch was)
        return []
    root = process(ident)
    procs = {} if root is None and _group_recycled(ident) else {p.pid: p for p in group_members(ident.pgid)}
    if root is not None:
        try:
            procs.update({p.pid: p for p in root.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
        procs[root.pid] = root
    return list(procs.values())


def kill_tree(
    ident: Identity,
    grace: float | None = None,
    popen: subprocess.Popen | None = None,
    known: Iterable[psutil.Process] = (),
) -> None:
    """SIGTERM the whole tree, SIGKILL what is left after `grace`, and return only once all of it is gone.

    `accelerate launch` does not forward signals reliably, so every process is signalled itself.
    `known`: descendants seen earlier, which may have been orphaned since (psutil refuses to signal
    a pid that was reused by another process).
    """
    procs = list({p.pid: p for p in [*known, *tree(ident)] if _running(p)}.values())
    for sig, wait in ((signal.SIGTERM, kill_grace() if grace is None else grace), (signal.SIGKILL, 30.0)):
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        if popen is not None:  # reap our own child, or it lingers as a zombie
            try:
                popen.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        procs = _wait_gone(procs, wait)
        procs = [p for p in {q.pid: q for q in [*procs, *tree(ident)]}.values() if _running(p)]
        if not procs:
            return


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes have exited; return those still running. A zombie counts as gone:
    it holds no memory or device, and reaping an orphan is init's job (some containers' init is slow)."""
    deadline = time.time() + timeout
    while (procs := [p for p in procs if _running(p)]) and time.time() < deadline:
        time.sleep(0.05)
    return procs


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_exit(exit_path: Path) -> int | None:
    """The wrapper's exit record (a shell status: 128 + N means signal N), or None if it never wrote one."""
    try:
        return int(exit_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


_DIED_WITH = re.compile(r"died with <Signals\.(SIG[A-Z0-9]+): (\d+)>")


def signal_in_log(text: str) -> int | None:
    """The signal that killed the trainer under `accelerate launch` (it reports it, then exits 1)."""
    found = _DIED_WITH.findall(text)
    return int(found[-1][1]) if found else None
