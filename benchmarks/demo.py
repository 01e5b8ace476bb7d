"""Measure the embedded demo against its targets: first run, re-run, peak memory, PGR.

Runs `w2s assets install demo` and `w2s run recipes/demo.toml` twice in a fresh cache and results
directory (nothing reused from earlier runs), sampling the whole process tree's resident memory.
Usage: python benchmarks/demo.py [--recipe recipes/demo.toml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"first run (s)": 300.0, "re-run (s)": 15.0, "peak memory (GiB)": 4.0}


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak summed RSS (GiB) of the command's process tree, and its output."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.time()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
        parent, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)
        elapsed = time.time() - start
        log.seek(0)
        out = log.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}")
    return elapsed, peak / 2**30, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "demo.toml"))
    parser.add_argument("--keep", help="use this directory (kept) instead of a temporary one")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="w2s-bench-"))
    env = dict(os.environ, W2S_CACHE=str(work / "cache"), HF_HUB_OFFLINE="1")
    w2s = [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(work / "results")]

    install_s, _, _ = timed(w2s + ["assets", "install", "demo"], env)
    first_s, first_peak, _ = timed(w2s + ["run", args.recipe], env)
    again_s, _, again_out = timed(w2s + ["run", args.recipe], env)
    _, _, table = timed(w2s + ["results", args.recipe, "--json"], env)

    print(f"cpu cores: {os.cpu_count()}   work dir: {work}")
    print(f"assets install: {install_s:.1f} s (pip from the local index/cache + unpacking mpnet)")
    measured = {"first run (s)": first_s, "re-run (s)": again_s, "peak memory (GiB)": first_peak}
    for key, value in measured.items():
        print(f"{key:<18} {value:8.2f}   target {TARGETS[key]:6.1f}   ratio {value / TARGETS[key]:.2f}")
    assert "0 to run" in again_out, "the re-run trained something"
    for row in json.loads(table):
        seeds = ", ".join(
            f"seed {p['seed']}: weak {p['weak']:.3f} w2s {p['w2s']:.3f} ceiling {p['ceiling']:.3f} PGR {p['pgr']:.2f}"
            for p in row["per_seed"]
        )
        print(f"{row['method']:<8} PGR {row['pgr']:.2f} [95% CI {row['pgr_lo']:.2f}, {row['pgr_hi']:.2f}]  ({seeds})")


if __name__ == "__main__":
    main()
