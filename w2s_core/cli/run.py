"""`w2s run` (and --dry-run) and `w2s retry`: plan the work, hand it to a supervisor, follow it to the end."""

from __future__ import annotations

import shutil
import sys
from argparse import Namespace
from pathlib import Path

from w2s_core.cli import DEFAULT_RECIPE
from w2s_core.cli.follow import report_end
from w2s_core.cli.long_inputs import dry_run_lines, not_downloaded
from w2s_core.cli.supervise import Detached, QueueOptions, retry_request, submit_request, supervise
from w2s_core.cli.targets import select_jobs, with_blocked_downstream
from w2s_core.data import make_splits
from w2s_core.data.registry import source
from w2s_core.errors import InputError
from w2s_core.paths import writable_results_dir
from w2s_core.spec.plan import Plan, build_plan, describe_plan
from w2s_core.spec.recipe import Recipe, load_recipe
from w2s_core.status import RETRYABLE, JobStatus
from w2s_core.store import DB_NAME, Store
from w2s_core.supervision import holder, planning
from w2s_core.supervision.executors import SLURM, job_launch
from w2s_core.supervision.placement import check_launch
from w2s_core.supervision.preflight import preflight
from w2s_core.supervision.runner import JOBS_DIR
from w2s_core.supervision.slots import visible_gpus


def _done_jobs(results_dir: str) -> set[str]:
    """Keys of the jobs already done in `results_dir` (none when it has no database yet)."""
    if not (Path(results_dir) / DB_NAME).is_file():
        return set()
    with Store.open(results_dir, readonly=True) as store:
        return {j["hash"] for j in store.jobs(status=JobStatus.DONE)}


def _print_detached(what: str, outcome: Detached) -> None:
    how = "started supervisor" if outcome.started else "queued behind supervisor"
    print(
        f"{what}: request {outcome.request_id} {how} pid {outcome.pid}; log {outcome.log}. "
        "Follow it with `w2s follow` (or `w2s queue`); cancel with `w2s cancel`."
    )


def _check_data(recipe: Recipe) -> list[str]:
    """The data checks a launch runs (`preflight`: the file and its columns, labels, enough rows for
    n_test and n_train), a line per part (a suite's task); raises InputError as the launch would. A Hub
    dataset not downloaded yet is left to the launch: the dry run never downloads."""
    lines = []
    for part in recipe.parts:
        name, _ = source(part.data)
        task = f"task {part.name}: " if recipe.is_suite else ""
        missing = not_downloaded(part)
        if missing:
            lines.append(f"{task}data checks: not run, {missing}")
            continue
        try:
            make_splits(part.data, recipe.seeds[0])
        except InputError as exc:
            raise InputError(f"{task}{exc}") from None
        lines.append(f"{task}data checks: passed ({name}: columns, labels and sizes, as a launch checks them)")
    return lines


def _check_placement(root: Path, plan: Plan) -> None:
    """[launch] gpus_per_job / min_free_gb that no job could ever start with, and jobs the memory plan
    says cannot fit the GPUs (planning.check_memory), fail here, before anything is queued, when the
    supervisor will be started from this shell (and so see its GPUs); a running supervisor checks
    against its own GPUs when it applies the request."""
    recipe = plan.recipe
    if holder(root) is None:
        pool = visible_gpus()
        for warning in check_launch(recipe.launch, str(recipe.path), pool=pool):
            print(f"warning: {warning}", file=sys.stderr)
        planning.check_memory(plan.jobs, recipe.launch, str(recipe.path), pool)


def _memory_lines(plan: Plan) -> list[str]:
    """The dry run's memory plan: each job's estimate per GPU, strategy and accelerate config."""
    slurm = plan.recipe.launch.get("executor") == SLURM
    return planning.dry_run_lines(plan.jobs, plan.recipe.launch, [] if slurm else visible_gpus())


def _slurm_lines(plan: Plan, results_dir: str) -> list[str]:
    """The dry run's Slurm part: for each job, the sbatch options submitit writes and the command each
    of its nodes runs (a multi-node job's rendezvous included)."""
    from w2s_core.supervision.executors.slurm import SlurmExecutor

    executor = SlurmExecutor()
    root = Path(results_dir).expanduser().resolve()
    bound = plan.recipe.launch.get("parallel")
    lines = [
        "executor slurm (submitit AutoExecutor(cluster='slurm')): each job is submitted with sbatch once its "
        f"upstream jobs are done; {f'at most {bound}' if bound else 'every ready job'} in Slurm at once"
    ]
    if shutil.which("sbatch") is None:
        lines.append("  (note: there is no sbatch on PATH here; run w2s on a node that can submit jobs)")
    for i, job in enumerate(plan.jobs, 1):
        row = {"hash": job.key, "launch": {**plan.recipe.launch, **job_launch(plan.recipe, job)}}
        described = executor.describe_command({**row, "dir": str(root / JOBS_DIR / job.key[:16])})
        lines.append(f"{i:>3}. {job.short} {described}")
    return lines


def _dry_run(plan: Plan, args: Namespace) -> int:
    cached = set() if args.force else _done_jobs(args.results_dir)
    print("\n".join(describe_plan(plan, cached)), flush=True)
    print("\n".join(_check_data(plan.recipe)), flush=True)  # a missing column fails here, not at launch
    print("\n".join(dry_run_lines(plan)), flush=True)  # [data] long_inputs: what happens to too-long inputs
    print("\n".join(_memory_lines(plan)), flush=True)  # issue 14: per-job memory per GPU, strategy, accelerate
    if plan.recipe.launch.get("executor") == SLURM:
        print("\n".join(_slurm_lines(plan, args.results_dir)), flush=True)
    return 0


def launch_overrides(args: Namespace, recipe: Recipe) -> dict:
    """[launch] keys the command line overrides: `--executor`, and `--parallel` for a Slurm run (it then
    bounds the jobs in Slurm at once, as `[launch] parallel` does)."""
    overrides = {"executor": args.executor} if getattr(args, "executor", None) else {}
    if args.parallel and overrides.get("executor", recipe.launch.get("executor")) == SLURM:
        overrides["parallel"] = args.parallel
    return overrides


def cmd_run(args: Namespace) -> int:
    recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
    overrides = launch_overrides(args, recipe)
    recipe.launch.update(overrides)
    plan = build_plan(recipe)
    if args.dry_run:
        return _dry_run(plan, args)
    preflight(recipe)
    root = writable_results_dir(args.results_dir)
    if recipe.launch.get("executor") == SLURM:
        from w2s_core.supervision.executors.slurm import check_slurm

        check_slurm("--executor slurm" if overrides.get("executor") else f'{recipe.path}: [launch] executor = "slurm"')
        planning.check_memory(plan.jobs, recipe.launch, str(recipe.path), [], slurm=True)
    else:
        _check_placement(root, plan)
    parallel = args.parallel or recipe.launch.get("parallel", 1)
    request = submit_request(root, recipe, args.force, parallel, overrides)
    what = f"run {recipe.path}"
    options = QueueOptions(args.detach, parallel, args.jobs_per_gpu, args.cancel_on_interrupt)
    outcome = supervise(root, what, request, options, name=recipe.name)
    if isinstance(outcome, Detached):
        _print_detached(what, outcome)
        return 0
    return report_end(root, outcome, "some job(s) failed or were skipped; see `w2s show {run}`, then `w2s retry`")


def cmd_retry(args: Namespace) -> int:
    root = writable_results_dir(args.results_dir)
    with Store.open(args.results_dir, readonly=True) as store:
        picked = {j["hash"] for j in select_jobs(store, args.target, RETRYABLE, "retry")}
        job_hashes = with_blocked_downstream(store, picked, RETRYABLE)  # so a chain runs again
    request = retry_request(root, job_hashes)
    options = QueueOptions(args.detach, args.parallel or 1, args.jobs_per_gpu, args.cancel_on_interrupt)
    outcome = supervise(root, "retry", request, options)
    if isinstance(outcome, Detached):
        _print_detached("retry", outcome)
        return 0
    return report_end(root, outcome, "some job(s) failed again; see `w2s show {run}`", table=False)
