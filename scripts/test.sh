#!/usr/bin/env bash
# Set up (if needed) and run the fast test suite. Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# tmux for the real-terminal TUI test (skipped with a reason where it cannot be installed)
if ! command -v tmux >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq tmux >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq tmux)) >/dev/null 2>&1 || true
fi
# A single-node Slurm for the `slurm` tests (tests/test_slurm.py), as root with apt; quick when it is
# already up. Where it cannot start, the reason goes to the tests, which skip with it; the run goes on.
if [ -z "${W2S_NO_SLURM:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if up="$(timeout 600 bash scripts/slurm-up.sh 2>&1)"; then
    echo "$up"
  else
    W2S_SLURM_UP_ERROR="$(echo "$up" | tail -1)"
    export W2S_SLURM_UP_ERROR
    echo "scripts/slurm-up.sh failed, the slurm tests will skip: $W2S_SLURM_UP_ERROR"
  fi
fi
# Modules run on W2S_TEST_WORKERS processes (default 3; 0 = in this process): most of the suite waits on
# subprocesses (trainers, supervisors, Slurm), so 3 workers keep 2 cores busy. `--dist loadfile` keeps a
# module on one worker, so a module-scoped run of tiny models happens once; conftest.py sends the longest
# modules out first (`--no-loadscope-reorder` keeps that order: xdist would start with the modules that
# hold the most tests).
exec "${W2S_VENV:-.venv}/bin/python" -m pytest -q -n "${W2S_TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder "$@"
