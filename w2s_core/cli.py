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

from w2s_core.errors import InputError, W2SError

DEFAULT_RESULTS = "w2s-results"
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "demo.toml"


def _store(args, readonly: bool):
    from w2s_core.store import Store

    return Store.open(args.results_dir, readonly=readonly)


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _root(args) -> Path:
    from w2s_core.paths import writable_results_dir

    return writable_results_dir(args.results_dir)


def _request(root: Path, **fields) -> dict:
    """What every queued request carries: the command line and a snapshot of the code version."""
    from w2s_core.supervision.provenance import provenance, snapshot_code

    return {"argv": sys.argv, "cwd": os.getcwd(), "provenance": provenance(), "code": snapshot_code(root), **fields}


def _supervise(args, root: Path, what: str, request: dict, parallel: int) -> tuple[int, bool]:
    """Apply `request` and work the queue: in the background with --detach, else here until done.

    Returns (run id or 0 when detached, whether any job of the run failed or was skipped).
    """
    from w2s_core.supervision import supervisor as sv
    from w2s_core.supervision.lock import WriterLock

    if args.detach:
        request_id = sv.post(root, request.pop("action"), **request)
        pid, started = sv.ensure_running(root, parallel, args.jobs_per_gpu)
        how = "started supervisor" if started else "queued behind supervisor"
        print(f"{what}: request {request_id} {how} pid {pid}; log {root / sv.LOG_NAME}. "
              "Follow it with `w2s queue`; cancel with `w2s cancel`.")
        return 0, False
    lock = WriterLock(root).acquire(what)
    try:
        with _store(args, readonly=False) as store:
            sup = sv.Supervisor(store, sv.device_slots(parallel, args.jobs_per_gpu))
            run_id = sup.apply({"id": sv.new_request_id(), **request})
            sup.run()
            failed = any(j["status"] in sv.UNSUCCESSFUL for j in store.jobs(run_id=run_id))
    finally:
        lock.release()
    if sv.pending(root):  # posted while we held the lock: hand them to a supervisor
        sv.ensure_running(root, parallel, args.jobs_per_gpu)
    return run_id, failed


def cmd_run(args) -> int:
    from w2s_core.spec.plan import build_plan, describe
    from w2s_core.spec.recipe import load_recipe

    recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
    plan = build_plan(recipe)
    if args.dry_run:
        done = set()
        from w2s_core.store import DB_NAME

        if (Path(args.results_dir) / DB_NAME).is_file():
            with _store(args, readonly=True) as store:
                done = {j["hash"] for j in store.jobs(status="done")}
        print(f"recipe {recipe.name} ({recipe.path}): {len(plan.jobs)} jobs, seeds {recipe.seeds}")
        for i, job in enumerate(plan.jobs, 1):
            state = "cached" if job.hash in done and not args.force else "to run"
            deps = ",".join(d[:10] for d in job.deps) or "-"
            remote = "  [trust_remote_code: runs the model repo's own code]" if job.spec["model"].get(
                "trust_remote_code") else ""
            print(f"{i:>3}. {job.short} [{state:6}] {describe(job)}  (after {deps}){remote}")
        return 0
    from w2s_core.supervision.preflight import preflight

    preflight(recipe)
    root = _root(args)
    parallel = args.parallel or recipe.launch.get("parallel", 1)
    request = _request(root, action="submit", recipe_path=str(Path(recipe.path).resolve()), recipe_text=recipe.text,
                       force=args.force, parallel=parallel)
    run_id, failed = _supervise(args, root, f"run {recipe.path}", request, parallel)
    if args.detach:
        return 0
    from w2s_core.analysis import format_table, pgr_table

    with _store(args, readonly=True) as store:
        print(format_table(pgr_table(store, recipe.hash)))
    if failed:
        print("some job(s) failed or were skipped; see `w2s show " + str(run_id) + "`, then `w2s retry`",
              file=sys.stderr)
    return 1 if failed else 0


def _select_jobs(store, target: str | None, statuses: tuple[str, ...], what: str) -> list[dict]:
    """Jobs named by TARGET (a job hash prefix, a run id, a recipe file or name; all when None) in `statuses`."""
    jobs = store.jobs()
    if target is None:
        chosen = jobs
    elif target.isdigit() and any(j["run_id"] == int(target) for j in jobs):
        chosen = [j for j in jobs if j["run_id"] == int(target)]
    elif len(target) >= 4 and all(c in "0123456789abcdef" for c in target.lower()) and any(
            j["hash"].startswith(target.lower()) for j in jobs):
        chosen = [j for j in jobs if j["hash"].startswith(target.lower())]
        if len(chosen) > 1:
            raise InputError(f"{target!r} matches {len(chosen)} jobs in {store.path}; give a longer hash prefix")
    else:
        path = Path(target)
        wanted = None
        if path.is_file():
            from w2s_core.spec.recipe import load_recipe

            wanted = load_recipe(path).hash
        names = {r["hash"] for r in store.recipes() if r["hash"] == wanted or r["name"] in (target, path.stem)}
        if not names:
            raise InputError(f"{target!r} is not a job hash prefix, a run id or a recipe name/file known to "
                             f"{store.path}; `w2s queue` and `w2s runs` list them")
        chosen = [j for h in sorted(names) for j in store.jobs(recipe_hash=h)]
    picked = [j for j in chosen if j["status"] in statuses]
    if not picked:
        scope = f"{target!r}" if target else store.path
        raise InputError(f"Nothing to {what}: {scope} has no job that is {' or '.join(statuses)}.")
    return picked


def cmd_queue(args) -> int:
    from w2s_core.supervision import supervisor as sv

    root = Path(args.results_dir).expanduser().resolve()
    if not (root / "w2s.db").is_file():
        raise InputError(f"There is no w2s results database at {root / 'w2s.db'}; nothing was ever queued there. "
                         "Pass the results directory `w2s run` wrote to.")
    with _store(args, readonly=True) as store:
        active = store.jobs(status=sv.ACTIVE)
    holder = _resume(root, active)
    requests = len(sv.pending(root))
    if args.json:
        print(json.dumps(_json_safe({"supervisor": holder, "pending_requests": requests, "jobs": active}),
                         indent=1, default=str))
        return 0
    print(f"supervisor: {'pid ' + str(holder['pid']) if holder else 'none (idle)'}; "
          f"{requests} request(s) waiting; {len(active)} job(s) queued or running")
    rejected = sorted((root / sv.INBOX).glob("*.rejected"))
    if rejected:
        print(f"{len(rejected)} request(s) could not be applied (the latest: {rejected[-1]}); "
              f"the reason is in {root / sv.LOG_NAME}")
    for j in active:
        who = f"{j['kind']} {j['model']}" + (f" <- {j['weak_model']} ({j['loss']})" if j["weak_model"] else "")
        where = f"{j['device']} pid {j['pid']} since {_stamp(j['started_at'])}" if j["status"] == "running" else ""
        print(f"  {j['hash'][:10]}  {j['status']:<8} run {j['run_id']:<4} {who:<40} {where}")
    return 0


def _resume(root: Path, active: list[dict]) -> dict | None:
    """The supervisor of `root`; if there is none but work is queued or running (its supervisor was
    killed, or the machine rebooted), start one: it re-attaches to live jobs and records lost ones."""
    from w2s_core.supervision import supervisor as sv

    holder = sv.holder(root)
    if holder is None and (active or sv.pending(root)) and os.access(root, os.W_OK):
        pid, _ = sv.ensure_running(root, sv.resume_parallel(active))
        print(f"no supervisor was running: started pid {pid} to re-attach {len(active)} job(s)", file=sys.stderr)
        holder = {"pid": pid}
    return holder


def cmd_cancel(args) -> int:
    from w2s_core.supervision import supervisor as sv
    from w2s_core.supervision.lock import WriterLock

    root = Path(args.results_dir).expanduser().resolve()
    with _store(args, readonly=True) as store:
        hashes = [j["hash"] for j in _select_jobs(store, args.target, sv.ACTIVE, "cancel")]
    if sv.holder(root) is not None:
        request_id = sv.post(root, "cancel", jobs=hashes)
        deadline = time.time() + args.timeout
        while (root / sv.INBOX / f"{request_id}.json").exists():
            if time.time() > deadline:
                raise W2SError(f"The supervisor did not confirm the cancel within {args.timeout} s; it is still "
                               f"queued ({root / sv.INBOX / request_id}.json). See {root / sv.LOG_NAME}.")
            time.sleep(0.1)
    else:
        lock = WriterLock(root).acquire("cancel")
        try:
            with _store(args, readonly=False) as store:
                sv.Supervisor(store, []).cancel(hashes)
        finally:
            lock.release()
    print(f"cancelled {len(hashes)} job(s); their process trees are gone")
    return 0


def cmd_retry(args) -> int:
    from w2s_core.supervision import supervisor as sv

    root = _root(args)
    with _store(args, readonly=True) as store:
        picked = _select_jobs(store, args.target, sv.UNSUCCESSFUL, "retry")
        hashes = {j["hash"] for j in picked}
        grew = True  # with what they blocked, so a chain runs again

        while grew:
            down = [j["hash"] for j in store.jobs(status=sv.UNSUCCESSFUL)
                    if j["hash"] not in hashes and _upstream(j) in hashes]
            hashes.update(down)
            grew = bool(down)
    request = _request(root, action="retry", jobs=sorted(hashes))
    run_id, failed = _supervise(args, root, "retry", request, args.parallel or 1)
    if not args.detach and failed:
        print(f"some job(s) failed again; see `w2s show {run_id}`", file=sys.stderr)
    return 1 if failed else 0


def _upstream(job: dict) -> str | None:
    from w2s_core.supervision.runner import upstream_hash

    return upstream_hash(job["spec"])


def cmd_runs(args) -> int:
    with _store(args, readonly=True) as store:
        names = {r["hash"]: r["name"] for r in store.recipes()}
        runs = [{**r, "recipe": names.get(r["recipe_hash"])} for r in store.runs()]
        _resume(store.root, store.jobs(status=("queued", "running")))
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
            from w2s_core.spec.recipe import load_recipe

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
    from w2s_core.analysis import format_table, pgr_table

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
            keys = ("hash", "kind", "model", "weak_model", "loss", "seed", "status", "device", "exit_code", "signal")
            print(json.dumps(_json_safe({**run, "jobs": [{k: j[k] for k in keys} for j in jobs]}),
                             indent=1, default=str))
            return 0
        matches = [j for j in store.jobs() if j["hash"].startswith(args.id)]
        if len(matches) != 1:
            raise InputError(f"{args.id!r} matches {len(matches)} jobs in {store.path}; give a run id or a longer "
                             "job hash prefix")
        job = matches[0]
        recipe = next((r for r in store.recipes() if r["hash"] == job["recipe_hash"]), None)
        run = next((r for r in store.runs() if r["id"] == job["run_id"]), None)
        print(json.dumps(_json_safe({**job, "results": store.results(job["hash"]), "recipe": recipe,
                                     "run_provenance": run and run["provenance"]}), indent=1, default=str))
        if job["error"]:  # the diagnosis and log tail read better as text than as a JSON string
            print(f"\n{job['status']}: {job['error']}")
    return 0


def cmd_assets(args) -> int:
    from w2s_core import assets

    if args.action == "install":
        assets.install(args.bundle)
    for name, present in assets.installed().items():
        print(f"{'ok     ' if present else 'missing'}  {name}")
    return 0


def add_plugin_commands(sub) -> None:
    """Subcommands other packages register in the `w2s.commands` entry-point group (`w2s tui`), so the
    core never imports them. Each entry point is `register(subparsers)`; one that fails to load is skipped."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="w2s.commands"):
        try:
            register = ep.load()
        except Exception as exc:  # a broken plugin must not take the headless CLI down with it
            print(f"warning: skipping w2s command {ep.name!r} from {ep.value}: {exc}", file=sys.stderr)
            continue
        register(sub)


def _queue_options(command) -> None:
    command.add_argument("--detach", action="store_true",
                         help="queue the work for a background supervisor and return at once")
    command.add_argument("--jobs-per-gpu", type=int, default=1, help="jobs sharing one GPU (default 1)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="w2s", description="Weak-to-strong generalization experiments.")
    p.add_argument("--results-dir", default=os.environ.get("W2S_RESULTS", DEFAULT_RESULTS),
                   help="results directory holding w2s.db (default ./w2s-results or $W2S_RESULTS)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe's jobs (finished ones are skipped)")
    run.add_argument("recipe", nargs="?", help=f"TOML recipe (default: {DEFAULT_RECIPE.name})")
    run.add_argument("--dry-run", action="store_true", help="print the expanded plan and exit")
    run.add_argument("--force", action="store_true", help="re-run jobs even if already done")
    run.add_argument("--parallel", type=int, help="CPU jobs to run at once when there is no GPU (default: recipe "
                     "[launch] parallel or 1)")
    _queue_options(run)
    run.set_defaults(fn=cmd_run)
    queue = sub.add_parser("queue", help="queued and running jobs, and the supervisor running them")
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(fn=cmd_queue)
    cancel = sub.add_parser("cancel", help="cancel queued or running jobs (kills their whole process trees)")
    cancel.add_argument("target", help="a job hash prefix, a run id, or a recipe file or name")
    cancel.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the supervisor")
    cancel.set_defaults(fn=cmd_cancel)
    retry = sub.add_parser("retry", help="run failed, cancelled or skipped jobs again")
    retry.add_argument("target", nargs="?", help="a job hash prefix, a run id, or a recipe (default: all)")
    retry.add_argument("--parallel", type=int, help="CPU jobs to run at once when there is no GPU (default 1)")
    _queue_options(retry)
    retry.set_defaults(fn=cmd_retry)
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
    assets = sub.add_parser("assets", help="offline models and data for the demo recipe")
    assets.add_argument("action", choices=["install", "status"])
    assets.add_argument("bundle", nargs="?", default="demo")
    assets.set_defaults(fn=cmd_assets)
    add_plugin_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for option in ("parallel", "jobs_per_gpu"):
        if getattr(args, option, None) is not None and getattr(args, option) < 1:
            print(f"error: --{option.replace('_', '-')} must be >= 1", file=sys.stderr)
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
