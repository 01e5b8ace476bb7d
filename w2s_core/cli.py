"""The headless CLI: `w2s run | runs | results | show`. Same core as the TUI, no UI imports."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

from .errors import InputError, W2SError

DEFAULT_RESULTS = "w2s-results"
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "smoke.toml"


def _store(args, readonly: bool):
    from .store import Store

    return Store.open(args.results_dir, readonly=readonly)


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def cmd_run(args) -> int:
    from .plan import build_plan, describe
    from .recipe import load_recipe
    from .runner import Runner

    recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
    plan = build_plan(recipe)
    if args.dry_run:
        done = set()
        if (Path(args.results_dir) / "w2s.db").is_file():
            with _store(args, readonly=True) as store:
                done = {j["hash"] for j in store.jobs(status="done")}
        print(f"recipe {recipe.name} ({recipe.path}): {len(plan.jobs)} jobs, seeds {recipe.seeds}")
        for i, job in enumerate(plan.jobs, 1):
            state = "cached" if job.hash in done and not args.force else "to run"
            deps = ",".join(d[:10] for d in job.deps) or "-"
            print(f"{i:>3}. {job.short} [{state:6}] {describe(job)}  (after {deps})")
        return 0
    from .data import make_splits

    make_splits(recipe.data, recipe.seeds[0])  # a missing file/column or n_test too big fails here, before any job
    with _store(args, readonly=False) as store:
        failed = Runner(store, plan, force=args.force, parallel=args.parallel).run(sys.argv)
        from .analysis import format_table, pgr_table

        print(format_table(pgr_table(store, recipe.hash)))
    if failed:
        print(f"{failed} job(s) failed or were skipped; see `w2s runs` and `w2s show`", file=sys.stderr)
    return 1 if failed else 0


def cmd_runs(args) -> int:
    with _store(args, readonly=True) as store:
        names = {r["hash"]: r["name"] for r in store.recipes()}
        runs = [{**r, "recipe": names.get(r["recipe_hash"])} for r in store.runs()]
    if args.json:
        print(json.dumps(_json_safe(runs), indent=1, default=str))
        return 0
    print(f"{'id':>4}  {'recipe':<24} {'started':<19}  {'status':<11}")
    for r in runs:
        print(f"{r['id']:>4}  {str(r['recipe']):<24} {_stamp(r['started_at']):<19}  {r['status']:<11}")
    return 0


def _recipe_hashes(store, args) -> list[str]:
    recipes = store.recipes()
    if args.all:
        return [r["hash"] for r in recipes]
    if args.recipe:
        path = Path(args.recipe)
        if path.is_file():
            from .recipe import load_recipe

            wanted = load_recipe(path).hash
            if any(r["hash"] == wanted for r in recipes):
                return [wanted]
        by_name = [r for r in recipes if r["name"] in (args.recipe, path.stem)]
        if not by_name:
            raise InputError(f"no results for recipe {args.recipe!r} in {store.path}; run it first with "
                             f"`w2s run {args.recipe}`")
        return [max(by_name, key=lambda r: r["created_at"])["hash"]]
    runs = store.runs()
    if not runs:
        raise InputError(f"{store.path} holds no runs yet; start one with `w2s run RECIPE`")
    return [max(runs, key=lambda r: r["id"])["recipe_hash"]]


def _json_safe(obj):
    """NaN is not JSON: an undefined figure (e.g. a one-seed interval) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def cmd_results(args) -> int:
    from .analysis import format_table, pgr_table

    with _store(args, readonly=True) as store:
        rows = [row for h in _recipe_hashes(store, args) for row in pgr_table(store, h, args.metric)]
    if args.json:
        print(json.dumps(_json_safe(rows), indent=1))
    elif args.csv:
        out = io.StringIO()
        flat = [{k: v for k, v in r.items() if k not in ("per_seed", "warnings")} for r in rows]
        writer = csv.DictWriter(out, fieldnames=list(flat[0]) if flat else ["recipe"])
        writer.writeheader()
        writer.writerows(flat)
        print(out.getvalue(), end="")
    else:
        print(format_table(rows))
    return 0


def cmd_show(args) -> int:
    with _store(args, readonly=True) as store:
        if args.id.isdigit():
            run = next((r for r in store.runs() if r["id"] == int(args.id)), None)
            if run is None:
                raise InputError(f"no run with id {args.id} in {store.path}; `w2s runs` lists them")
            jobs = [j for j in store.jobs() if j["run_id"] == run["id"]]
            print(json.dumps(_json_safe({**run, "jobs": [{k: j[k] for k in ("hash", "kind", "model", "weak_model", "loss", "seed",
                                                                  "status", "exit_code")} for j in jobs]}),
                             indent=1, default=str))
            return 0
        matches = [j for j in store.jobs() if j["hash"].startswith(args.id)]
        if len(matches) != 1:
            raise InputError(f"{args.id!r} matches {len(matches)} jobs in {store.path}; give a run id or a longer "
                             "job hash prefix")
        job = matches[0]
        print(json.dumps(_json_safe({**job, "results": store.results(job["hash"])}), indent=1, default=str))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="w2s", description="Weak-to-strong generalization experiments.")
    p.add_argument("--results-dir", default=os.environ.get("W2S_RESULTS", DEFAULT_RESULTS),
                   help="results directory holding w2s.db (default ./w2s-results or $W2S_RESULTS)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe's jobs (finished ones are skipped)")
    run.add_argument("recipe", nargs="?", help=f"TOML recipe (default: {DEFAULT_RECIPE.name})")
    run.add_argument("--dry-run", action="store_true", help="print the expanded plan and exit")
    run.add_argument("--force", action="store_true", help="re-run jobs even if already done")
    run.add_argument("--parallel", type=int, help="jobs to run at once (default: recipe [launch] parallel or 1)")
    run.set_defaults(fn=cmd_run)
    runs = sub.add_parser("runs", help="list runs")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(fn=cmd_runs)
    res = sub.add_parser("results", help="the PGR table")
    res.add_argument("recipe", nargs="?", help="recipe file or name (default: the latest run's)")
    res.add_argument("--all", action="store_true", help="every recipe in the store")
    res.add_argument("--metric", choices=["acc", "auroc"], default="acc")
    fmt = res.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    res.set_defaults(fn=cmd_results)
    show = sub.add_parser("show", help="one run (by id) or job (by hash prefix)")
    show.add_argument("id")
    show.set_defaults(fn=cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "parallel", None) is not None and args.parallel < 1:
        print("error: --parallel must be >= 1", file=sys.stderr)
        return 2
    try:
        return args.fn(args)
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished jobs are recorded, re-run to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
