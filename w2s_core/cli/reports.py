"""The commands that only read: `w2s results`, `w2s show`, and `w2s assets` (`w2s runs` is in runs.py)."""

from __future__ import annotations

from argparse import Namespace

from w2s_core import assets
from w2s_core.analysis.pgr import grid_keys, pgr_results
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
    """The PGR table. `--by KEY` (a key a grid sweeps, as `w2s run --dry-run` names it) pivots it to
    answer "which value of KEY is best": one row per setup (weak, strong, method...) and value of KEY,
    each the grid point with the best PGR over the other swept keys' values, which it names in
    `best_of` (w2s_core.analysis.pivot). A key no recipe shown sweeps is an error naming the swept keys."""
    by = getattr(args, "by", None)
    with Store.open(args.results_dir, readonly=True) as store:
        hashes = recipe_hashes(store, args.recipe, args.all)
        if by and len(hashes) > 1:  # --all: the recipes whose grid sweeps KEY
            hashes = _sweeping(store, hashes, by)
        dropped = {h: dropped_in_results(store, h) for h in hashes}  # [data] long_inputs = "drop"
        results = {h: pgr_results(store, h, args.metric, by=by) for h in hashes}  # (table, summary)
        rows = [
            {**row, Result.n_dropped("test"): (dropped[h] or {}).get("test")}
            for h, (table, _) in results.items()
            for row in table
        ]
        summary = [entry for _, recipe_summary in results.values() for entry in recipe_summary]
        names = {r["hash"]: r["name"] for r in store.recipes()}
    if getattr(args, "summary", False) and (args.json or args.csv):  # the paper's per-method medians
        rows = summary
    if args.json:
        print(json_text(rows))
    elif args.csv:
        print(csv_text(rows), end="")
    elif getattr(args, "latex", False):  # a booktabs table for a paper (issue 13)
        from w2s_core.analysis.latex import latex_table

        print(latex_table(rows, [] if by else summary), end="")  # as the text table below
    else:
        print(format_table(rows, [] if by else summary))  # the summary is per grid point, not pivoted
        for h, counts in dropped.items():
            if counts is not None:
                print(results_note(names.get(h, h[:10]), counts))
    return 0


def _sweeping(store: Store, hashes: list[str], by: str) -> list[str]:
    """The recipes among `hashes` whose grid sweeps `by`; none is an InputError naming the swept keys."""
    keys = {h: grid_keys(store, h) for h in hashes}
    found = [h for h in hashes if by in keys[h]]
    if not found:
        swept = sorted({k for ks in keys.values() for k in ks})
        have = f"the swept keys are {', '.join(swept)}" if swept else "none has a grid (list values)"
        raise InputError(f"--by {by}: no recipe in {store.path} sweeps {by!r}; {have}")
    return found


def _show_run(store: Store, run_id: int) -> None:
    run = next((r for r in store.runs() if r["id"] == run_id), None)
    if run is None:
        raise InputError(f"no run with id {run_id} in {store.path}; `w2s runs` lists them")
    jobs = [j for j in store.jobs() if j["run_id"] == run["id"]]
    columns = RUN_JOB_COLUMNS + (SLURM_JOB_COLUMNS if any(j.get("executor") == "slurm" for j in jobs) else ())
    annotations = {  # issue 13: `w2s tag` / `w2s note`
        "tags": store.tags_of(run=run["id"], recipe=run["recipe_hash"]),
        "notes": [{k: n[k] for k in ("id", "text", "created_at")} for n in store.notes(run["id"])],
    }
    print(json_text({**run, **annotations, "jobs": [{k: j.get(k) for k in columns} for j in jobs]}))


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
                "tags": store.tags_of(job=job["hash"], run=job["run_id"], recipe=job["recipe_hash"]),  # `w2s tag`
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
