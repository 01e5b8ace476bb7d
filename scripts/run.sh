#!/usr/bin/env bash
# Set up (if needed) and run the embedded default experiment, then print its PGR table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${W2S_VENV:-.venv}/bin/w2s" run "$@"
