"""`w2s plot [RECIPE] [--all] [--out DIR] [--format png,svg] [--metric] [--job HASH]`: the paper's figures as files.

Recipes resolve as in `w2s results` (a file or name, its latest version; default the latest run's).
Each recipe's figures go to `--out` (with `--all`: `--out/<recipe>/`), by default
`RESULTS_DIR/figures/<recipe>/`. Every written path is printed on stdout, one a line, so a script can
read them; what was skipped for lack of data is said on stderr. `--job HASH` adds that job's
training curves, next to its recipe's figures (or the first recipe's, when its own is not plotted).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from w2s_core.analysis.plots import figures_folder, find_job, parse_formats, write_figures, write_job_curves
from w2s_core.analysis.plots_data import slug
from w2s_core.cli.targets import recipe_hashes
from w2s_core.store import Store


def _folders(hashes: list[str], names: dict[str, str], args: Namespace) -> dict[str, Path]:
    """Each recipe's output folder; two versions of one recipe name (`--all`) apart by hash prefix."""
    counts: dict[str, int] = {}
    for h in hashes:
        counts[names.get(h, h)] = counts.get(names.get(h, h), 0) + 1
    out = {}
    for h in hashes:
        name = names.get(h, h[:10])
        name = name if counts[names.get(h, h)] == 1 else f"{name}-{h[:8]}"
        if args.out and not args.all:
            out[h] = Path(args.out)
        elif args.out:
            out[h] = Path(args.out) / slug(name)
        else:
            out[h] = figures_folder(args.results_dir, name)
    return out


def cmd_plot(args: Namespace) -> int:
    formats = parse_formats(args.format)  # a bad name fails before the store is opened
    with Store.open(args.results_dir, readonly=True) as store:
        hashes = recipe_hashes(store, args.recipe, args.all)
        job = find_job(store, args.job) if args.job else None  # a bad prefix fails before anything is written
        names = {r["hash"]: r["name"] for r in store.recipes()}
        folders = _folders(hashes, names, args)
        written = 0
        for h in hashes:
            skipped: list[str] = []
            paths = write_figures(store, h, folders[h], formats, args.metric, skipped=skipped)
            written += len(paths)
            for path in paths:
                print(path)
            for note in skipped:
                print(f"{names.get(h, h[:10])}: skipped {note}", file=sys.stderr)
        if job is not None:
            skipped = []
            folder = folders.get(job["recipe_hash"], folders[hashes[0]])
            paths = write_job_curves(store, job["hash"], folder, formats, args.metric, skipped)
            written += len(paths)
            for path in paths:
                print(path)
            for note in skipped:
                print(f"skipped {note}", file=sys.stderr)
    if not written:
        print(
            "no figures written: no finished results to draw yet (`w2s results` shows what there is)", file=sys.stderr
        )
    return 0
