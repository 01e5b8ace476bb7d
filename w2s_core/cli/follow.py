"""`w2s follow [RUN|RECIPE]`: re-attach to a run (its progress lines, then its PGR table), and the end of a
followed run that `w2s run` and `w2s retry` print too (`report_end`).

Following only reads the store (`w2s_core.supervision.follow`); the background supervisor does the work,
so closing the terminal or Ctrl-C stops only the following.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.table import format_table
from w2s_core.cli.targets import recipe_hashes
from w2s_core.errors import InputError
from w2s_core.status import RunStatus
from w2s_core.store import Store
from w2s_core.supervision import Outcome, attach


def report_end(root: Path, outcome: Outcome, failed_hint: str, table: bool = True) -> int:
    """The end of a followed run: its PGR table, and which jobs did not end done. Returns the exit code
    (0: every job done; 1: some failed, were skipped or cancelled; 130: Ctrl-C stopped following)."""
    if outcome.stopped:
        return outcome.exit_code
    if table and outcome.recipe_hash:
        with Store.open(root, readonly=True) as store:
            print(format_table(pgr_table(store, outcome.recipe_hash)))
    if outcome.failed:
        print(failed_hint.format(run=outcome.run_id), file=sys.stderr)
        print("\n".join(outcome.failure_lines()), file=sys.stderr)
    return outcome.exit_code


def follow_target(store: Store, target: str | None) -> int:
    """The run `w2s follow` attaches to: a run id, the latest run of a recipe (file or name), or by
    default the latest run still running, else the latest run."""
    runs = store.runs()
    if not runs:
        raise InputError(f"{store.path} holds no runs yet; start one with `w2s run RECIPE`")
    if target is None:
        running = [r for r in runs if r["status"] == RunStatus.RUNNING]
        return max(running or runs, key=lambda r: r["id"])["id"]
    if target.isdigit() and any(r["id"] == int(target) for r in runs):
        return int(target)
    hashes = set(recipe_hashes(store, target, every=False))
    of_recipe = [r for r in runs if r["recipe_hash"] in hashes]
    if not of_recipe:
        raise InputError(
            f"{target!r} is neither a run id nor a recipe with a run in {store.path}; `w2s runs` lists them"
        )
    return max(of_recipe, key=lambda r: r["id"])["id"]


def cmd_follow(args: Namespace) -> int:
    root = Path(args.results_dir).expanduser().resolve()
    with Store.open(root, readonly=True) as store:
        run_id = follow_target(store, args.target)
    outcome = attach(root, run_id=run_id, cancel_on_interrupt=args.cancel_on_interrupt)
    return report_end(root, outcome, "some job(s) failed or were skipped; see `w2s show {run}`, then `w2s retry`")
