#!/usr/bin/env bash
# Set up (if needed) and run the fast test suite. Extra arguments go to pytest (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${W2S_VENV:-.venv}/bin/python" -m pytest -q "$@"
