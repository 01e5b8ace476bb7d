#!/usr/bin/env bash
# Set up (if needed), install the demo's offline assets, and run the embedded default experiment
# (recipes/demo.toml), then print its PGR table. Extra arguments go to `w2s run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
"${W2S_VENV:-.venv}/bin/w2s" assets install demo
exec "${W2S_VENV:-.venv}/bin/w2s" run "$@"
