#!/usr/bin/env bash
# Create ./.venv and install w2s into it, with PyTorch's CPU build (the README's CPU path).
# Idempotent: re-installs only when pyproject.toml changed. Set W2S_VENV to use another place.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${W2S_VENV:-.venv}"
stamp="$venv/.w2s-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
