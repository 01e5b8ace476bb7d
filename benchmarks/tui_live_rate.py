"""A job emitting 50 events/s, watched in the live view: print the UI's lag behind the job and
whether the job kept its pace with the UI open.

Three processes as in real use: the job appends to events.jsonl, the manager ingests it into the
store every 0.2 s (as the runner does), and the TUI reads the store read-only.

    .venv/bin/python benchmarks/tui_live_rate.py [--rate 50] [--seconds 10]   (targets: lag <= 1 s, job not slowed)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from w2s_core.jobdir import EVENTS
from w2s_core.status import JobStatus
from w2s_core.store import Store

HASH = "f" * 64


def emit(path: Path, rate: float, seconds: float) -> None:
    """The job: one event every 1/rate s on an absolute schedule; prints how late the writes were."""
    late, t0 = [], time.time()
    with open(path, "a") as f:
        for i in range(int(rate * seconds)):
            due = t0 + i / rate
            time.sleep(max(0.0, due - time.time()))
            now = time.time()
            late.append(now - due)
            f.write(
                json.dumps(
                    {
                        "step": i + 1,
                        "t": now,
                        "loss": 1 / (1 + i / rate),
                        "train_acc": 0.5 + i / (4 * rate * seconds),
                        "alpha": min(0.5, i / (rate * seconds)),
                        "examples": i * 8,
                        "examples_per_s": 8 * rate,
                    }
                )
                + "\n"
            )
            f.flush()
    path.with_suffix(".done").touch()
    print(
        json.dumps(
            {"events": len(late), "wall": time.time() - t0, "late_mean": statistics.mean(late), "late_max": max(late)}
        )
    )


def manage(root: Path, events: Path) -> None:
    """The manager: the only writer, ingesting by byte offset every 0.2 s until the job is done."""
    with Store.open(root) as store:
        while not events.with_suffix(".done").exists():
            store.ingest_events(HASH, events)
            time.sleep(0.2)
        store.ingest_events(HASH, events)


def reset(root: Path) -> None:
    """Forget the previous phase's events, in the file and the store."""
    for name in (EVENTS, "events.done"):
        (root / "jobs" / HASH[:16] / name).unlink(missing_ok=True)
    with Store.open(root) as store:
        store.reset_job_outputs(HASH)


def run_job(root: Path, rate: float, seconds: float) -> tuple[subprocess.Popen, subprocess.Popen, Path]:
    events = root / "jobs" / HASH[:16] / EVENTS
    me = [sys.executable, __file__]
    job = subprocess.Popen(
        [*me, "--emit", str(events), "--rate", str(rate), "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True
    )
    manager = subprocess.Popen([*me, "--manage", str(root), str(events)])
    return job, manager, events


async def watch(root: Path, rate: float, seconds: float) -> tuple[dict, list[float], int]:
    from w2s_tui.app import W2SApp
    from w2s_tui.screens import LiveScreen

    reset(root)
    app = W2SApp(root, start="runs")
    applied: list[tuple[float, int]] = []
    async with app.run_test(size=(100, 30)) as pilot:
        screen = LiveScreen(HASH)
        await app.push_screen(screen)
        original = screen.apply  # the JobEvents handler's work: note when each batch is on screen

        def apply(*args):
            original(*args)
            applied.append((time.time(), screen.last_seq))

        screen.apply = apply
        job, manager, events = run_job(root, rate, seconds)
        while job.poll() is None or manager.poll() is None:
            await pilot.pause(0.1)
        await pilot.pause(1.5)
        stats = json.loads(job.stdout.read())
    written = [json.loads(line)["t"] for line in events.read_text().splitlines()]
    lags = []
    for seq, t in enumerate(written):
        shown = next((ta for ta, last in applied if last >= seq), None)
        lags.append(float("inf") if shown is None else shown - t)
    return stats, lags, len(applied)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--emit")
    p.add_argument("--manage", nargs=2)
    args = p.parse_args()
    if args.emit:
        return emit(Path(args.emit), args.rate, args.seconds)
    if args.manage:
        return manage(Path(args.manage[0]), Path(args.manage[1]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Store.open(root) as store:
            store.upsert_job(
                {
                    "hash": HASH,
                    "kind": "gt",
                    "model": "bench",
                    "seed": 0,
                    "dir": f"jobs/{HASH[:16]}",
                    "spec": {
                        "data": {"name": "synthetic", "n_train": int(16 * args.rate * args.seconds)},
                        "train": {"epochs": 1},
                    },
                }
            )
            store.set_job_status(HASH, JobStatus.RUNNING, pid=0)
        (root / "jobs" / HASH[:16]).mkdir(parents=True)
        reset(root)
        job, manager, _ = run_job(root, args.rate, args.seconds)
        manager.wait()
        alone = json.loads(job.communicate()[0])
        watched, lags, redraws = asyncio.run(watch(root, args.rate, args.seconds))
    print(
        f"job alone:        {alone['events']} events in {alone['wall']:.2f} s, writes late by "
        f"{alone['late_mean'] * 1000:.1f} ms mean / {alone['late_max'] * 1000:.1f} ms max"
    )
    print(
        f"job with the TUI: {watched['events']} events in {watched['wall']:.2f} s, writes late by "
        f"{watched['late_mean'] * 1000:.1f} ms mean / {watched['late_max'] * 1000:.1f} ms max "
        f"(slowdown {watched['wall'] / alone['wall']:.3f}x)"
    )
    lags.sort()
    print(
        f"UI lag behind the job (write -> on screen, incl. the manager's 0.2 s ingest): mean "
        f"{statistics.mean(lags):.2f} s, p95 {lags[int(len(lags) * 0.95)]:.2f} s, max {lags[-1]:.2f} s (target <= 1 s)"
    )
    print(
        f"live view redraws: {redraws} for {len(lags)} events "
        f"({redraws / args.seconds:.1f}/s, bounded by the 0.5 s tick)"
    )


if __name__ == "__main__":
    main()
