"""Open the TUI on a database with 10,000 jobs and 1,000,000 metric rows; print how long the first
screen takes, and how long scrolling keys take while the runs table pages in more rows.

    .venv/bin/python benchmarks/tui_large_db.py [--jobs 10000] [--events 20]   (targets: first screen <= 1 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from textual.widgets import DataTable

from w2s_core.jobdir import Event
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.store import queries as browse
from w2s_tui.app import W2SApp

KEYS = (Event.LOSS, Event.TRAIN_ACC, Event.EXAMPLES, Event.EXAMPLES_PER_S, Event.LR)


def build(root: Path, n_jobs: int, n_events: int) -> None:
    rng = random.Random(0)
    statuses = [JobStatus.DONE] * 8 + [JobStatus.FAILED, JobStatus.RUNNING]
    with Store.open(root) as store, store.transaction() as conn:
        conn.execute("INSERT INTO recipes VALUES ('r', 'big', 'big.toml', '', 0)")
        spec = json.dumps({"data": {"name": "synthetic", "n_train": 1000}, "train": {"epochs": 2}})
        for i in range(n_jobs):
            h = f"{i:064x}"
            model = f"model-{i % 7}"
            conn.execute("INSERT INTO jobs (hash, recipe_hash, kind, model, weak_model, loss, seed, spec, status, "
                         "started_at, finished_at, dir) VALUES (?, 'r', 'transfer', ?, 'model-0', 'xent', ?, ?, ?, ?, ?, ?)",
                         (h, model, i % 5, spec, statuses[i % 10], 1.7e9 + i, 1.7e9 + i + 60, f"jobs/{h[:16]}"))
            conn.execute("INSERT INTO recipe_jobs VALUES ('r', ?, ?)",
                         (h, json.dumps({"role": "transfer", "weak": "model-0", "strong": model, "method": "xent",
                                         "seed": i % 5})))
            conn.execute("INSERT INTO results VALUES (?, ?, ?)", (h, Event.TEST_ACC, rng.random()))
            conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                             [(h, s, s, k, rng.random()) for s in range(n_events) for k in KEYS])


async def measure(root: Path, n_jobs: int) -> list[float]:
    t0 = time.perf_counter()
    app = W2SApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one("#jobs", DataTable)
        while table.row_count == 0:
            await pilot.pause(0.01)
        first = time.perf_counter() - t0
        print(f"first screen (runs table with {table.row_count} rows of {n_jobs}): {first:.2f} s  (target <= 1 s)")
        lags = []
        for _ in range(600):  # down through three pages, each fetched near its end
            t = time.perf_counter()
            await pilot.press("down")
            lags.append(time.perf_counter() - t)
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(f"600 x down: mean {statistics.mean(lags) * 1000:.1f} ms, p99 "
              f"{sorted(lags)[int(len(lags) * 0.99)] * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms per key; "
              f"{table.row_count} rows loaded, cursor at {table.cursor_row}")
        t = time.perf_counter()
        await pilot.press("end")
        await pilot.pause()
        print(f"end key (to the last loaded row): {(time.perf_counter() - t) * 1000:.1f} ms")
        return lags


def real_terminal_first_screen(root: Path, n_jobs: int) -> None:
    """Process start to the runs table drawn in an 80x24 tmux pane: Python start and imports included."""
    if shutil.which("tmux") is None:
        print("tmux not installed: real-terminal timing skipped")
        return
    tmux = ["tmux", "-L", f"w2s-bench-{os.getpid()}"]
    try:
        for _attempt in range(3):
            subprocess.run([*tmux, "kill-session", "-t", "b"], capture_output=True)
            t0 = time.perf_counter()
            subprocess.run([*tmux, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24",
                            f"{sys.executable} -m w2s_core.cli tui {root}"], check=True)
            while f"of {n_jobs} jobs" not in subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"],
                                                            capture_output=True, text=True).stdout:
                time.sleep(0.02)
            print(f"real terminal (tmux 80x24), `w2s tui` start to runs table drawn: {time.perf_counter() - t0:.2f} s")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--events", type=int, default=20, help="events per job (x5 metric keys)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        build(root, args.jobs, args.events)
        with Store.open(root, readonly=True) as store:
            n_metrics = store.db.execute("SELECT count(*) FROM metrics").fetchone()[0]
            print(f"built {args.jobs} jobs, {n_metrics} metric rows in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            browse.job_rows(store, limit=200)
            print(f"browse.job_rows first page: {(time.perf_counter() - t) * 1000:.1f} ms")
            t = time.perf_counter()
            browse.job_rows(store, "model-3", sort="loss", limit=200)
            print(f"browse.job_rows search 'model-3' sorted by loss: {(time.perf_counter() - t) * 1000:.1f} ms")
        big = asyncio.run(measure(root, args.jobs))
        real_terminal_first_screen(root, args.jobs)
    with tempfile.TemporaryDirectory() as tmp:  # the same keys on a small database: what a key costs anyway
        build(Path(tmp), 300, args.events)
        print("baseline, 300 jobs:")
        small = asyncio.run(measure(Path(tmp), 300))
    print(f"key latency ratio {args.jobs} jobs / 300 jobs: {statistics.mean(big) / statistics.mean(small):.2f}x "
          "(pilot.press includes a full headless repaint, so absolute figures depend on the machine's load)")


if __name__ == "__main__":
    main()
