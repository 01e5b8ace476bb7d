"""Measure run supervision with the real trainer: how fast `--detach` returns, what a follower
(`w2s follow`, as `w2s run` in the foreground) costs and that a hang-up ends only it, how long a
re-attaching supervisor takes to pick up after kill -9, and how fast a cancel leaves no process behind.

Uses recipes/smoke.toml in a fresh results directory (W2S_CACHE as set, so tiny models are reused).
Usage: python benchmarks/supervision.py [--keep DIR]
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

from w2s_core.status import JobStatus
from w2s_core.store import DB_NAME
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keep", type=Path, help="results directory to use and keep (default: a temporary one)")
    args = p.parse_args()
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
