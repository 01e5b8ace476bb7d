"""Open the TUI on a database with 10,000 jobs and 1,000,000 metric rows; print how long the first
screen takes, and what a scrolling key costs on the Runs table.

    .venv/bin/python benchmarks/tui_large_db.py [--jobs 10000] [--events 20] [--compare REV] [--rounds 2]

Targets (issue 15): a key <= 20 ms (p99 <= 50 ms), process start to the drawn table <= 0.5 s.

Per key, three figures:
  key→frame   from the key event sent to the first frame drawn with the cursor on its new row (the
              frame is turned into terminal output as a real terminal would get it): what a user waits
  cpu         process CPU time (all threads) spent per key: the work, whatever the machine's load
  pilot.press Textual's test pilot per key; it sleeps at least 2 × 20 ms for idle per key, so it
              cannot go below ~40 ms and is printed only for comparison with older figures
First screen: in Textual's headless Pilot (app start to rows in the table) and in a real 80×24 tmux
pane (`w2s tui` process start, imports included, to the table drawn).

--compare REV measures the w2s_tui of git revision REV (e.g. HEAD before a change) against the
working tree's, alternating runs of the two in subprocesses on the same database, so both see the
same machine load.
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

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("loss", "train_acc", "examples", "examples_per_s", "lr")


def build(root: Path, n_jobs: int, n_events: int) -> None:
    from w2s_core.status import JobStatus
    from w2s_core.store import Store

    rng = random.Random(0)
    statuses = [JobStatus.DONE] * 8 + [JobStatus.FAILED, JobStatus.RUNNING]
    with Store.open(root) as store, store.transaction() as conn:
        conn.execute("INSERT INTO recipes VALUES ('r', 'big', 'big.toml', '', 0)")
        spec = json.dumps({"data": {"name": "synthetic", "n_train": 1000}, "train": {"epochs": 2}})
        for i in range(n_jobs):
            h = f"{i:064x}"
            model = f"model-{i % 7}"
            conn.execute(
                "INSERT INTO jobs (hash, recipe_hash, kind, model, weak_model, loss, seed, spec, status, "
                "started_at, finished_at, dir) VALUES (?, 'r', 'transfer', ?, 'model-0', 'xent', ?, ?, ?, ?, ?, ?)",
                (h, model, i % 5, spec, statuses[i % 10], 1.7e9 + i, 1.7e9 + i + 60, f"jobs/{h[:16]}"),
            )
            conn.execute(
                "INSERT INTO recipe_jobs VALUES ('r', ?, ?)",
                (
                    h,
                    json.dumps(
                        {"role": "transfer", "weak": "model-0", "strong": model, "method": "xent", "seed": i % 5}
                    ),
                ),
            )
            conn.execute("INSERT INTO results VALUES (?, ?, ?)", (h, "test_acc", rng.random()))
            conn.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                [(h, s, s, k, rng.random()) for s in range(n_events) for k in KEYS],
            )


def stats_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": statistics.mean(values) * 1000,
        "p99": ordered[int(len(values) * 0.99)] * 1000,
        "max": ordered[-1] * 1000,
    }


async def measure(root: Path, n_keys: int = 600) -> dict:
    """First screen and per-key figures of the importable w2s_tui on the database in `root`."""
    from textual import events
    from textual._compositor import CompositorUpdate  # what a frame is, before it becomes terminal output

    from w2s_tui import command

    # what `w2s tui` does around its imports (a version of w2s_tui without these steps runs without them)
    getattr(command, "import_store_without_dataframes", lambda: None)()  # older code only; the store does it now
    from w2s_tui.app import W2SApp

    getattr(command, "settle_heap", lambda: None)()
    t0 = time.perf_counter()
    app = W2SApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one("#jobs")
        while table.row_count == 0:
            await pilot.pause(0.01)
        first = time.perf_counter() - t0
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        waiting: dict = {}
        display = app._display

        def frame(screen, renderable) -> None:  # the app's frame hook: headless Textual skips the output
            display(screen, renderable)
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            if waiting and table.cursor_row == waiting["row"] and not waiting["done"].done():
                waiting["done"].set_result(time.perf_counter())

        app._display = frame
        to_frame, cpu = [], []
        for _ in range(n_keys):  # down through several pages
            waiting.update(row=table.cursor_row + 1, done=asyncio.get_running_loop().create_future())
            c, t = time.process_time(), time.perf_counter()
            app._driver.send_message(events.Key("down", None))
            try:
                to_frame.append(await asyncio.wait_for(waiting["done"], 5) - t)
            except asyncio.TimeoutError:
                to_frame.append(5.0)
            cpu.append(time.process_time() - c)
        waiting.clear()
        await app.workers.wait_for_complete()
        presses = []
        for _ in range(100):
            t = time.perf_counter()
            await pilot.press("up")
            presses.append(time.perf_counter() - t)
        return {
            "first_screen_s": first,
            "to_frame": stats_ms(to_frame),
            "cpu": stats_ms(cpu),
            "pilot_press": stats_ms(presses),
            "rows": table.row_count,
            "cursor": table.cursor_row,
        }


def tmux_first_screen(root: Path, n_jobs: int, env: dict, cwd: Path, tries: int = 3) -> list[float]:
    """Process start to the runs table drawn in an 80x24 tmux pane: Python start and imports included."""
    if shutil.which("tmux") is None:
        return []
    times = []
    for _ in range(tries):
        tmux = ["tmux", "-L", f"w2s-bench-{os.getpid()}-{time.monotonic_ns()}"]  # a fresh server each try
        try:
            t0 = time.perf_counter()
            subprocess.run(
                [
                    *tmux,
                    "new-session",
                    "-d",
                    "-s",
                    "b",
                    "-x",
                    "80",
                    "-y",
                    "24",
                    "-c",
                    str(cwd),
                    "-e",
                    f"PYTHONPATH={env.get('PYTHONPATH', '')}",
                    f"{sys.executable} -m w2s_core.cli tui {root}",
                ],
                check=True,
            )
            while True:
                pane = subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
                if f"{n_jobs} jobs" in pane and "model-" in pane:
                    break
                time.sleep(0.01)
            times.append(time.perf_counter() - t0)
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)
    return times


def run_one(label: str, root: Path, n_jobs: int, pythonpath: str | None) -> dict:
    """Measure one w2s_tui (the working tree's, or the one on `pythonpath`) in a fresh process."""
    env = {**os.environ, "PYTHONPATH": pythonpath or str(ROOT)}
    cwd = Path(pythonpath) if pythonpath else ROOT
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure", str(root)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    if out.returncode:
        raise SystemExit(f"{label}: the measurement failed:\n{out.stderr}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    found["tmux_s"] = tmux_first_screen(root, n_jobs, env, cwd)
    return found


def report(label: str, r: dict) -> None:
    def ms(d: dict) -> str:
        return f"mean {d['mean']:6.1f} ms, p99 {d['p99']:6.1f} ms, max {d['max']:6.1f} ms"

    print(
        f"[{label}] first screen (Pilot): {r['first_screen_s']:.2f} s; tmux 80x24, process start to table: "
        + (", ".join(f"{t:.2f} s" for t in r["tmux_s"]) or "tmux not installed")
    )
    print(f"[{label}]   key→frame {ms(r['to_frame'])}   ({r['rows']} rows, cursor at {r['cursor']})")
    print(f"[{label}]   cpu       {ms(r['cpu'])}")
    print(f"[{label}]   pilot.press {ms(r['pilot_press'])}  (floor ~40 ms: Pilot's idle waits)")


def extract(rev: str, into: Path) -> Path:
    """The w2s_tui package of git revision `rev`, unpacked under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "w2s_tui"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--events", type=int, default=20, help="events per job (x5 metric keys)")
    p.add_argument("--compare", metavar="REV", help="also measure the w2s_tui of this git revision, alternately")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per version with --compare")
    p.add_argument("--measure", metavar="DB_DIR", help=argparse.SUPPRESS)  # the subprocess side
    args = p.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(Path(args.measure)))))
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores at start")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "db"
        root.mkdir()
        t = time.perf_counter()
        build(root, args.jobs, args.events)
        print(
            f"built {args.jobs} jobs, {args.jobs * args.events * len(KEYS)} metric rows in "
            f"{time.perf_counter() - t:.1f} s"
        )
        versions = {"working tree": None}
        if args.compare:
            (Path(tmp) / "old").mkdir()
            versions = {args.compare: str(extract(args.compare, Path(tmp) / "old")), **versions}
        for round_ in range(args.rounds if args.compare else 1):
            for label, path in versions.items():
                report(f"{label} #{round_ + 1}", run_one(label, root, args.jobs, path))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
