"""The headless CLI: `w2s run | follow | queue | cancel | retry | runs | results | show | assets | datasets |
prefetch | gpus | tag | untag | note | plot | export`, plus the commands other packages register (`w2s tui`).
Thin: parse the command line, call the library, print.

    run.py        w2s run (and --dry-run), w2s retry
    follow.py     w2s follow, and the end of a followed run (PGR table, which jobs failed)
    queue.py      w2s queue, w2s cancel
    runs.py       w2s runs (with tags and notes, --tag)
    reports.py    w2s results, show, assets
    tags.py       w2s tag, untag, note
    plot.py       w2s plot: the paper's figures as PNG/SVG/PDF files (matplotlib)
    export.py     w2s export: Parquet files, and an optional W&B mirror
    supervise.py  handing work to the background supervisor, then following it (or not: --detach)
    hubdata.py    w2s datasets, w2s prefetch
    gpus.py       w2s gpus: each GPU's use through NVML, and which w2s job holds its memory
    targets.py    what the user named on the command line (job hash prefix, run id, recipe file or name)
    output.py     JSON, CSV and time stamps for printing

A command's module is imported when that command runs (COMMANDS below), so `w2s --help` and a
mistyped option never open the store (sqlite-utils loads pandas). Nothing here imports torch or the
UI: import-linter checks it (pyproject.toml), and tests/test_architecture.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from w2s_core.errors import W2SError

DEFAULT_RESULTS = "w2s-results"  # = store.DEFAULT_RESULTS_DIR (a test keeps them equal)
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent.parent / "recipes" / "demo.toml"

# command -> the submodule holding its `cmd_<command>(args) -> exit code`
COMMANDS = {
    "run": "run",
    "retry": "run",
    "follow": "follow",
    "queue": "queue",
    "cancel": "queue",
    "runs": "runs",
    "results": "reports",
    "show": "reports",
    "assets": "reports",
    "datasets": "hubdata",
    "prefetch": "hubdata",
    "gpus": "gpus",
    "tag": "tags",
    "untag": "tags",
    "note": "tags",
    "plot": "plot",
    "export": "export",
}


def add_plugin_commands(sub) -> None:
    """Subcommands other packages register in the `w2s.commands` entry-point group (`w2s tui`), so the
    core never imports them. Each entry point is `register(subparsers)`; one that fails to load is skipped."""
    for ep in entry_points(group="w2s.commands"):
        try:
            register = ep.load()
        except Exception as exc:  # a broken plugin must not take the headless CLI down with it
            print(f"warning: skipping w2s command {ep.name!r} from {ep.value}: {exc}", file=sys.stderr)
            continue
        register(sub)


def _interrupt_option(command) -> None:
    command.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="Ctrl-C cancels the run's jobs (default: it stops following, the jobs go on; "
        "a second Ctrl-C within 3 s cancels them)",
    )


def _queue_options(command) -> None:
    command.add_argument(
        "--detach",
        action="store_true",
        help="queue the work for a background supervisor and return at once (without it, "
        "the same happens and then the run is followed here until it is over)",
    )
    command.add_argument("--jobs-per-gpu", type=int, default=1, help="jobs sharing one GPU (default 1)")
    _interrupt_option(command)


def _add_work_commands(sub) -> None:
    """Commands that change what runs: run, queue, cancel, retry."""
    run = sub.add_parser("run", help="run a recipe's jobs (finished ones are skipped)")
    run.add_argument("recipe", nargs="?", help=f"TOML recipe (default: {DEFAULT_RECIPE.name})")
    run.add_argument("--dry-run", action="store_true", help="print the expanded plan and exit")
    run.add_argument("--force", action="store_true", help="re-run jobs even if already done")
    run.add_argument(
        "--executor",
        choices=["local", "slurm"],
        help="where the jobs run: processes on this machine, or Slurm jobs through submitit "
        "(default: the recipe's [launch] executor, else local)",
    )
    run.add_argument(
        "--parallel",
        type=int,
        help="CPU jobs to run at once when there is no GPU (default: recipe [launch] parallel or 1)",
    )
    _queue_options(run)
    follow = sub.add_parser("follow", help="re-attach to a run: its progress, then its PGR table")
    follow.add_argument(
        "target",
        nargs="?",
        help="a run id or a recipe file or name (default: the latest run still running, else the latest run)",
    )
    _interrupt_option(follow)
    queue = sub.add_parser("queue", help="queued and running jobs, and the supervisor running them")
    queue.add_argument("--json", action="store_true")
    cancel = sub.add_parser("cancel", help="cancel queued or running jobs (kills their whole process trees)")
    cancel.add_argument("target", help="a job hash prefix, a run id, or a recipe file or name")
    cancel.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the supervisor")
    retry = sub.add_parser("retry", help="run failed, cancelled or skipped jobs again")
    retry.add_argument("target", nargs="?", help="a job hash prefix, a run id, or a recipe (default: all)")
    retry.add_argument("--parallel", type=int, help="CPU jobs to run at once when there is no GPU (default 1)")
    _queue_options(retry)


def _add_report_commands(sub) -> None:
    """Commands that only read: runs, results, show, assets, datasets, prefetch, gpus."""
    runs = sub.add_parser("runs", help="list runs, with their tags and notes")
    runs.add_argument("--json", action="store_true")
    runs.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="only runs carrying TAG (repeat: all of them)"
    )
    res = sub.add_parser("results", help="the PGR table")
    res.add_argument("recipe", nargs="?", help="recipe file or name (default: the latest run's)")
    res.add_argument("--all", action="store_true", help="every recipe in the store")
    res.add_argument("--metric", choices=["acc", "auroc"], default="acc")
    res.add_argument(
        "--summary",
        action="store_true",
        help="with --json/--csv: one row per method, the paper's median PGR over all pairs",
    )
    res.add_argument(
        "--by",
        metavar="KEY",
        help="pivot PGR by a key a grid sweeps (lr, alpha, epochs, ...): one row per value",
    )
    fmt = res.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    fmt.add_argument("--latex", action="store_true", help="a booktabs LaTeX table with the 95%% intervals")
    show = sub.add_parser("show", help="one run (by id) or job (by hash prefix)")
    show.add_argument("id")
    assets = sub.add_parser("assets", help="offline models and data for the demo recipe")
    assets.add_argument("action", choices=["install", "status"])
    assets.add_argument("bundle", nargs="?", default="demo")
    data = sub.add_parser("datasets", help="the dataset registry: hub id, splits, rows, licence, cached here")
    data.add_argument("--json", action="store_true")
    prefetch = sub.add_parser(
        "prefetch",
        help="download a recipe's models and dataset into the Hugging Face "
        "caches (on a login node) and print the variables for offline compute nodes",
    )
    prefetch.add_argument("recipe", nargs="?", help=f"TOML recipe (default: {DEFAULT_RECIPE.name})")
    prefetch.add_argument("--to", metavar="DIR", help="cache root to fill (HF_HOME=DIR; default: the current caches)")
    gpus = sub.add_parser(
        "gpus", help="each GPU's utilisation, memory, temperature and power, and the w2s jobs holding its memory"
    )
    gpus.add_argument("--json", action="store_true")
    _add_annotation_commands(sub)
    _add_output_commands(sub)


def _add_annotation_commands(sub) -> None:
    """Commands that label what is recorded: tag, untag, note (kept in the store, exported with results)."""
    for name, verb in (("tag", "add tags to"), ("untag", "remove tags from")):
        command = sub.add_parser(name, help=f"{verb} a run (id), a job (hash prefix) or a recipe (file or name)")
        command.add_argument("target", help="a run id, a job hash prefix, or a recipe file or name")
        command.add_argument("tags", nargs="+", metavar="TAG")
    note = sub.add_parser("note", help="add a note to a run (shown by `w2s runs` and `w2s show RUN`)")
    note.add_argument("run", help="run id")
    note.add_argument("text", help="the note (quote it)")


def _add_output_commands(sub) -> None:
    """Commands that write files from the results: plot, export."""
    plot = sub.add_parser("plot", help="write the paper's figures (PNG/SVG/PDF, one file each) and print their paths")
    plot.add_argument("recipe", nargs="?", help="recipe file or name (default: the latest run's)")
    plot.add_argument("--all", action="store_true", help="every recipe in the store")
    plot.add_argument("--out", metavar="DIR", help="where to write (default: RESULTS_DIR/figures/RECIPE)")
    plot.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf (default png,svg)")
    plot.add_argument("--metric", choices=["acc", "auroc"], default="acc")
    plot.add_argument("--job", metavar="HASH", help="also the training curves of this job (hash prefix)")
    export = sub.add_parser("export", help="results, per-job metrics and predictions as Parquet; or a W&B mirror")
    export.add_argument("recipe", nargs="?", help="recipe file or name (default: the latest run's)")
    export.add_argument("--all", action="store_true", help="every recipe in the store")
    export.add_argument("--parquet", metavar="DIR", help="write Parquet files into DIR")
    export.add_argument(
        "--wandb",
        action="store_true",
        help="log every job as a W&B run with its config and event stream (pip install 'w2s[wandb]'; "
        "offline with WANDB_MODE=offline)",
    )
    export.add_argument("--project", default="w2s", help="W&B project (default w2s)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="w2s", description="Weak-to-strong generalization experiments.")
    results_help = "results directory holding w2s.db (default ./w2s-results or $W2S_RESULTS)"
    p.add_argument("--results-dir", default=os.environ.get("W2S_RESULTS", DEFAULT_RESULTS), help=results_help)
    sub = p.add_subparsers(dest="command", required=True)
    _add_work_commands(sub)
    _add_report_commands(sub)
    add_plugin_commands(sub)
    for command in sub.choices.values():  # `w2s runs --results-dir X` as well as `w2s --results-dir X runs`
        command.add_argument("--results-dir", default=argparse.SUPPRESS, help=results_help)
    return p


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The function that runs the parsed command: a plugin's own `fn`, else `cmd_<command>` of its module."""
    if getattr(args, "fn", None) is not None:
        return args.fn
    module = importlib.import_module(f"{__name__}.{COMMANDS[args.command]}")
    return getattr(module, "cmd_" + args.command)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for option in ("parallel", "jobs_per_gpu"):
        if getattr(args, option, None) is not None and getattr(args, option) < 1:
            print(f"error: --{option.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        return handler(args)(args)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished jobs are recorded, re-run to continue", file=sys.stderr)
        return 130
