"""`w2s tui`: registered with the core CLI through the `w2s.commands` entry-point group, so the
core never imports the UI. Textual is imported only when the command runs."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    tui = subparsers.add_parser("tui", help="the terminal app: launch, watch, compare")
    tui.add_argument(
        "tui_results_dir",
        nargs="?",
        metavar="RESULTS_DIR",
        help="results directory holding w2s.db (default: --results-dir)",
    )
    tui.add_argument(
        "--keymap", help="TOML file mapping binding ids to keys (default $W2S_KEYMAP or ~/.config/w2s/keymap.toml)"
    )
    tui.add_argument(
        "--screen",
        choices=["recipes", "runs", "results", "history"],
        help="screen to open first (default: runs when the database has jobs, else recipes)",
    )
    tui.set_defaults(fn=run)


def settle_heap() -> None:
    """Move everything allocated so far (modules, classes: most of the process's objects) out of the
    garbage collector's sight. Its full collections then skip them: 7 ms instead of ~40 ms, which
    would otherwise stall a scrolling key about once a second (benchmarks/tui_large_db.py)."""
    import gc

    gc.freeze()  # no gc.collect() first: it would cost the start ~50 ms to free a little start-up garbage


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from w2s_core.errors import InputError
    from w2s_core.store import DB_NAME, Store

    from .app import W2SApp, binding_scopes, known_binding_ids
    from .keymap import keymap_path, load_keymap

    results = Path(args.tui_results_dir or args.results_dir).expanduser()
    if results.exists() and not results.is_dir():
        raise InputError(f"{results} is not a directory; pass the results directory that holds {DB_NAME}")
    if (results / DB_NAME).is_file():
        Store.open(results, readonly=True).close()  # a damaged or newer database fails here, in one line
    path = keymap_path(args.keymap)
    keymap = load_keymap(path, known_binding_ids(), binding_scopes()) if path else {}  # ids import every screen
    if not sys.stdout.isatty():
        raise InputError("w2s tui needs a terminal; use `w2s runs`/`w2s results` in scripts")
    settle_heap()
    W2SApp(results, keymap=keymap, start=args.screen).run()
    return 0
