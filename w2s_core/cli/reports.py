"""The commands that only read: `w2s results`, `w2s show`, and `w2s assets` (`w2s runs` is in runs.py)."""

from __future__ import annotations

from argparse import Namespace

from w2s_core import assets
from w2s_core.analysis.pgr import pgr_summary, pgr_table
from w2s_core.analysis.table import format_table
from w2s_core.cli.long_inputs import dropped_in_results, results_note
from w2s_core.cli.output import csv_text, json_text
from w2s_core.cli.targets import recipe_hashes
from w2s_core.errors import InputError
from w2s_core.jobdir import Result
from w2s_core.store import Store

# The columns of each job in `w2s show RUN`.
RUN_JOB_COLUMNS = ("hash", "kind", "model", "weak_model", "loss", "seed", "status", "device", "exit_code", "signal")
SLURM_JOB_COLUMNS = ("executor", "slurm_job_id", "slurm_state")  # shown too for a job Slurm ran


def cmd_results(args: Namespace) -> int:
    with Store.open(args.results_dir, readonly=True) as store:
        hashes = recipe_hashes(store, args.recipe, args.all)
        dropped = {h: dropped_in_results(store, h) for h in hashes}  # [data] long_inputs = "drop"
        rows = [
            {**row, Result.n_dropped("test"): (dropped[h] or {}).get("test")}
            for h in hashes
            for row in pgr_table(store, h, args.metric)
        ]
        summary = [entry for h in hashes for entry in pgr_summary(store, h, args.metric)]
        names = {r["hash"]: r["name"] for r in store.recipes()}
    if getattr(args, "summary", False) and (args.json or args.csv):  # the paper's per-method medians
        rows = summary
    if args.json:
        print(json_text(rows))
    elif args.csv:
        print(csv_text(rows), end="")
    else:
        print(format_table(rows, summary))
        for h, counts in dropped.items():
            if counts is not None:
                print(results_note(names.get(h, h[:10]), counts))
    return 0


def _show_run(store: Store, run_id: int) -> None:
    run = next((r for r in store.runs() if r["id"] == run_id), None)
    if run is None:
        raise InputError(f"no run with id {run_id} in {store.path}; `w2s runs` lists them")
    jobs = [j for j in store.jobs() if j["run_id"] == run["id"]]
    columns = RUN_JOB_COLUMNS + (SLURM_JOB_COLUMNS if any(j.get("executor") == "slurm" for j in jobs) else ())
    print(json_text({**run, "jobs": [{k: j.get(k) for k in columns} for j in jobs]}))


def _show_job(store: Store, prefix: str) -> None:
    matches = [j for j in store.jobs() if j["hash"].startswith(prefix)]
    if len(matches) != 1:
        raise InputError(
            f"{prefix!r} matches {len(matches)} jobs in {store.path}; give a run id or a longer job hash prefix"
        )
    job = matches[0]
    recipe = next((r for r in store.recipes() if r["hash"] == job["recipe_hash"]), None)
    run = next((r for r in store.runs() if r["id"] == job["run_id"]), None)
    print(
        json_text(
            {
                **job,
                "results": store.results(job["hash"]),
                "recipe": recipe,
                "run_provenance": run and run["provenance"],
            }
        )
    )
    if job["error"]:  # the diagnosis and log tail read better as text than as a JSON string
        print(f"\n{job['status']}: {job['error']}")


def cmd_show(args: Namespace) -> int:
    with Store.open(args.results_dir, readonly=True) as store:
        if args.id.isdigit():
            _show_run(store, int(args.id))
        else:
            _show_job(store, args.id)
    return 0


def cmd_assets(args: Namespace) -> int:
    if args.action == "install":
        assets.install(args.bundle)
    for name, present in assets.installed().items():
        print(f"{'ok     ' if present else 'missing'}  {name}")
    return 0
