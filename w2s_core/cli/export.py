"""`w2s export [RECIPE|--all] --parquet DIR` and `--wandb`: the results, jobs, metrics, predictions
and runs as Parquet files (`w2s_core.analysis.export`), and an optional W&B mirror of every job
(`w2s_core.analysis.wandb_mirror`). Prints each file written with its row count."""

from __future__ import annotations

import os
from argparse import Namespace

from w2s_core.cli.targets import recipe_hashes
from w2s_core.errors import InputError
from w2s_core.store import Store


def cmd_export(args: Namespace) -> int:
    if not args.parquet and not args.wandb:
        raise InputError(
            "w2s export: say where to: --parquet DIR (results, jobs, metrics, predictions and runs as "
            "Parquet files) and/or --wandb (every job as a W&B run; offline with WANDB_MODE=offline)"
        )
    with Store.open(args.results_dir, readonly=True) as store:
        hashes = recipe_hashes(store, args.recipe, args.all)
        names = ", ".join(r["name"] for r in store.recipes() if r["hash"] in hashes) or "no recipe"
        if args.parquet:
            from w2s_core.analysis.export import export_parquet

            written = export_parquet(store, hashes, args.parquet)
            print(f"wrote {len(written)} Parquet files of {names}:")
            width = max(len(str(path)) for path, _ in written)
            for path, rows in written:
                print(f"  {str(path):<{width}}  {rows} rows")
        if args.wandb:
            from w2s_core.analysis.wandb_mirror import mirror_to_wandb

            count = mirror_to_wandb(store, hashes, args.project)
            offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")
            where = " offline (`wandb sync` uploads them)" if offline else ""
            print(f"logged {count} jobs of {names} as W&B runs in project {args.project}{where}")
    return 0
