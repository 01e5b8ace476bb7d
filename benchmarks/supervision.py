"""Measure run supervision with the real trainer: how fast `--detach` returns, what a follower
(`w2s follow`, as `w2s run` in the foreground) costs and that a hang-up ends only it, how long a
re-attaching supervisor takes to pick up after kill -9, and how fast a cancel leaves no process behind.

Uses recipes/smoke.toml in a fresh results directory (W2S_CACHE as set, so tiny models are reused).
Usage: python benchmarks/supervision.py [--keep DIR]

`--tick` (issue 14) measures instead what the supervisor's poll costs per tick for running jobs, before
and after polling was made cheap, in one run: JOBS fake jobs (a shell with two sleeps each, launched as
jobs are), the machine padded with idle processes to PROCESSES in all, and for SECONDS each: before, every
0.2 s tick polled each job and walked its process tree (every process on the machine, through
psutil.process_iter); after, a tick polls each job (Popen.poll) and walks a tree only every
processes.TREE_WALK_S (`Attempt.remember`; jobs an hour old), with the cheaper walk. CPU time of this
process per tick, and the ratio.
Usage: python benchmarks/supervision.py --tick [--jobs 8] [--processes 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from w2s_core.jobdir import JobDir
from w2s_core.status import JobStatus
from w2s_core.store import DB_NAME
from w2s_core.supervision import processes, runner
from w2s_core.supervision.lock import LOCK_NAME
from w2s_core.supervision.runner import JOBS_DIR

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "recipes" / "smoke.toml"


def w2s(results: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return time.time() - start, out


def jobs(results: Path) -> list[dict]:
    try:
        conn = sqlite3.connect(f"file:{results / DB_NAME}?mode=ro", uri=True)  # raw: never disturbs the writer
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT hash, status, pid FROM jobs")]
    except sqlite3.Error:
        return []


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise SystemExit("timed out")


def leftovers(results: Path) -> list[int]:
    """Live (non-zombie) processes whose command line names this results directory's jobs."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(results / JOBS_DIR) in " ".join(
            proc.info["cmdline"] or []
        ):
            found.append(proc.pid)
    return found


def done_count(results: Path) -> int:
    return sum(j["status"] == JobStatus.DONE for j in jobs(results))


def follower(results: Path, seconds: float = 5.0) -> dict:
    """`w2s follow smoke` on the live run: its first line, its CPU while it follows, and the run going
    on after it is hung up (SIGHUP, as when the SSH connection drops)."""
    figures = {}
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), "follow", "smoke"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    proc.stdout.readline()
    figures["w2s follow: first line (s)"] = time.time() - start
    me = psutil.Process(proc.pid)
    before = sum(me.cpu_times()[:2])
    time.sleep(seconds)
    figures["w2s follow: CPU while following (% of one core)"] = 100 * (sum(me.cpu_times()[:2]) - before) / seconds
    done = done_count(results)
    proc.send_signal(signal.SIGHUP)
    proc.wait()
    start = time.time()
    wait_for(lambda: done_count(results) > done)
    figures["after the follower's SIGHUP: next job done (s)"] = time.time() - start
    return figures


def old_group_members(pgid: int) -> list[psutil.Process]:
    """The group walk as the supervisor ran it before issue 14 (a psutil object for every process)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return members


def old_tree(ident) -> list[psutil.Process]:
    """processes.tree with the old group walk."""
    root = processes.process(ident)
    procs = {p.pid: p for p in old_group_members(ident.pgid)}
    if root is not None:
        procs.update({p.pid: p for p in root.children(recursive=True)})
        procs[root.pid] = root
    return list(procs.values())


def cpu_per_tick(attempts: list, step, seconds: float) -> float:
    """Milliseconds of this process's CPU per tick of `step(attempt)` over every attempt, ticking as the loop does."""
    ticks, start = 0, time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for attempt in attempts:
            step(attempt)
        ticks += 1
        time.sleep(runner.POLL_S)
    return 1000 * (time.process_time() - start) / ticks


def tick_cost(jobs: int, total: int, seconds: float) -> dict:
    """The poll's CPU per tick for `jobs` running jobs on a machine of `total` processes, before and after."""
    folder = Path(tempfile.mkdtemp(prefix="w2s-tick-"))
    pad = max(0, total - len(psutil.pids()) - 3 * jobs)
    padding = subprocess.Popen(
        ["sh", "-c", f"for i in $(seq {pad}); do sleep 600 & done; wait"], start_new_session=True
    )
    attempts = []
    try:
        for i in range(jobs):
            job = JobDir(folder / f"job{i}")
            job.path.mkdir()
            cmd = ["sh", "-c", "sleep 600 & sleep 600 & wait"]
            popen, ident = processes.launch(cmd, job.log, job.exit_status, dict(os.environ), job.path)
            attempts.append(runner.Attempt(f"{i:064d}", job, ident, popen, time.time() - 3600, "cpu"))
        wait_for(lambda: len(psutil.pids()) >= total - 5, timeout=300)
        figures = {"processes on the machine": len(psutil.pids()), "running jobs": jobs}
        one = time.process_time()
        old_tree(attempts[0].ident)
        figures["one tree walk before (ms)"] = 1000 * (time.process_time() - one)
        one = time.process_time()
        processes.tree(attempts[0].ident)
        figures["one tree walk after (ms)"] = 1000 * (time.process_time() - one)

        def before(attempt) -> None:
            attempt.poll()
            attempt.seen.update({p.pid: p for p in old_tree(attempt.ident)})

        def after(attempt) -> None:
            attempt.poll()
            attempt.remember()

        figures["CPU per tick before (ms)"] = cpu_per_tick(attempts, before, seconds)
        figures["CPU per tick after (ms)"] = cpu_per_tick(attempts, after, seconds)
        figures["before / after"] = figures["CPU per tick before (ms)"] / figures["CPU per tick after (ms)"]
        for when in ("before", "after"):  # at the loop's 5 ticks a second (more than 1: it cannot keep up)
            figures[f"{when}: cores at 5 ticks/s"] = figures[f"CPU per tick {when} (ms)"] / runner.POLL_S / 1000
        return figures
    finally:
        for attempt in attempts:
            processes.kill_tree(attempt.ident, grace=0.0, popen=attempt.popen)
        os.killpg(padding.pid, signal.SIGKILL)
        padding.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keep", type=Path, help="results directory to use and keep (default: a temporary one)")
    p.add_argument("--tick", action="store_true", help="measure the supervisor's per-tick poll cost instead")
    p.add_argument("--jobs", type=int, default=8, help="--tick: running jobs")
    p.add_argument("--processes", type=int, default=2000, help="--tick: processes on the machine in all")
    p.add_argument("--seconds", type=float, default=10.0, help="--tick: seconds measured before, and after")
    args = p.parse_args()
    if args.tick:
        for key, value in tick_cost(args.jobs, args.processes, args.seconds).items():
            print(f"{key:<45} {value:.3f}" if isinstance(value, float) else f"{key:<45} {value}")
        return
    results = (args.keep or Path(tempfile.mkdtemp(prefix="w2s-bench-"))).resolve()
    figures = {}

    figures["run --detach returns (s)"], out = w2s(results, "run", str(SMOKE), "--detach")
    assert out.returncode == 0, out.stderr
    t0 = time.time()
    wait_for(lambda: any(j["status"] == JobStatus.RUNNING for j in jobs(results)))
    figures["first job running after detach (s)"] = time.time() - t0

    figures.update(follower(results))

    holder = json.loads((results / LOCK_NAME).read_text())["pid"]
    wait_for(lambda: any(j["status"] == JobStatus.DONE for j in jobs(results)))
    os.kill(holder, signal.SIGKILL)
    running = {j["hash"] for j in jobs(results) if j["status"] == JobStatus.RUNNING}
    t0 = time.time()
    _, out = w2s(results, "queue")  # starts a supervisor that re-attaches
    wait_for(
        lambda: (
            all(j["status"] != JobStatus.RUNNING or j["hash"] not in running for j in jobs(results))
            or json.loads((results / LOCK_NAME).read_text())["pid"] != holder
        )
    )
    figures["queue after kill -9 of the supervisor: new supervisor (s)"] = time.time() - t0

    wait_for(lambda: any(j["status"] == JobStatus.RUNNING for j in jobs(results)))
    time.sleep(3)  # let the trainers get going (imports, model load)
    before = len(leftovers(results))
    figures["cancel smoke: w2s cancel returns (s)"], out = w2s(results, "cancel", "smoke")
    assert out.returncode == 0, out.stderr
    figures["job processes before cancel"] = before
    figures["job processes left after cancel"] = len(leftovers(results))
    statuses = [j["status"] for j in jobs(results)]
    done_cancelled_skipped = (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.SKIPPED)
    figures["jobs done / cancelled / skipped"] = "/".join(str(statuses.count(s)) for s in done_cancelled_skipped)
    for key, value in figures.items():
        print(f"{key:<60} {value:.2f}" if isinstance(value, float) else f"{key:<60} {value}")
    print(f"results: {results}")


if __name__ == "__main__":
    main()
