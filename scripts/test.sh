#!/usr/bin/env bash
# Set up (if needed) and run the fast test suite. Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# tmux for the real-terminal TUI test (skipped with a reason where it cannot be installed)
if ! command -v tmux >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -qq tmux >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq tmux)) >/dev/null 2>&1 || true
fi
exec "${W2S_VENV:-.venv}/bin/python" -m pytest -q "$@"
