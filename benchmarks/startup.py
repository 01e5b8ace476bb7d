"""CLI start-up time of this checkout against an older commit, measured side by side in one run.

    python benchmarks/startup.py [--before REF] [--repeats N]

Checks REF (default 71a2a5f, before the issue-8 layout) out into a temporary git worktree and
times `w2s --help` and `w2s runs` (on the tests' filled results database: one run, 30 jobs) from both
trees, alternating old and new so machine load affects both alike. Prints the median wall time
of each and the ratio new/old, and whether `import w2s_core.cli` pulls in torch in each tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from conftest import fill  # noqa: E402


def timed(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "w2s_core.cli", *args],
        cwd=tempfile.gettempdir(),
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def imports_torch(tree: Path) -> bool:
    code = "import sys, w2s_core.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="71a2a5f")
    parser.add_argument("--repeats", type=int, default=7)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), opts.before], cwd=REPO, check=True, capture_output=True
        )
        try:
            results = Path(tmp) / "results"
            fill(results)  # the tests' fixed database: one recorded run of 30 jobs
            commands = {"w2s --help": ["--help"], "w2s runs": ["--results-dir", str(results), "runs"]}
            for label, args in commands.items():
                timed(old, args), timed(REPO, args)  # warm the page cache for both trees
                pairs = [(timed(old, args), timed(REPO, args)) for _ in range(opts.repeats)]
                before = statistics.median(p[0] for p in pairs)
                after = statistics.median(p[1] for p in pairs)
                print(f"{label:12s} before {before:6.2f} s   after {after:6.2f} s   after/before {after / before:5.2f}")
            print(f"import w2s_core.cli loads torch: before {imports_torch(old)}, after {imports_torch(REPO)}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)


if __name__ == "__main__":
    main()
