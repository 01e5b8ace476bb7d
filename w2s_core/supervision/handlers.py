"""One handler per request type: what applying a Submit, a Retry, a Cancel or an Annotate does.

`handle` looks the handler up by the request's class (HANDLERS), so a new request type is a new
dataclass in requests.py and a new function here. Submit and Retry apply once per request id (the
run they made is found again by it) and return that run; Cancel returns None.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.errors import InputError
from w2s_core.jobdir import JobDir
from w2s_core.status import ACTIVE, RETRYABLE, JobStatus
from w2s_core.supervision import placement, planning, runner
from w2s_core.supervision.executors import LOCAL, SLURM, job_launch
from w2s_core.supervision.requests import Annotate, Cancel, Request, Retry, Submit

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from w2s_core.spec.plan import Job, Plan
    from w2s_core.spec.recipe import Recipe
    from w2s_core.store import Store
    from w2s_core.supervision.loop import Supervisor


def handle(sup: Supervisor, request: Request) -> int | None:
    """Apply one request; returns the run it created (Submit, Retry)."""
    handler = HANDLERS.get(type(request))
    if handler is None:
        raise TypeError(f"no handler for {type(request).__name__}; add one to HANDLERS")
    return handler(sup, request)


# -- submit ----------------------------------------------------------------------------------------


def submit(sup: Supervisor, request: Submit) -> int:
    """Record the recipe snapshot and queue every job of its plan that is not done yet (once per request)."""
    store = sup.store
    existing = store.run_of_submission(request.id)
    if existing is not None:
        return existing
    recipe, plan, specs = read_submission(request)
    for warning in check_executor(sup, recipe):
        sup.report.echo(warning)
    slurm = recipe.launch.get("executor", LOCAL) == SLURM  # issue 14: jobs that cannot fit are refused
    planning.check_memory(plan.jobs, recipe.launch, str(recipe.path), sup.slots.gpus(), slurm=slurm)
    todo = 0
    with store.transaction():
        store.add_recipe(recipe.hash, recipe.name, str(recipe.path), request.recipe_text)
        run_id = store.start_run(recipe.hash, request.argv, request.provenance, submission=request.id)
        for job in plan.jobs:
            todo += queue_job(sup, job, specs[job.key], recipe, run_id, request)
    sup.report.submitted(run_id, recipe.name, total=len(plan.jobs), todo=todo)
    return run_id


def check_executor(sup: Supervisor, recipe: Recipe) -> list[str]:
    """Refuse a recipe whose jobs could never start here (InputError); return warnings to show.
    Local: a job that could never start on this supervisor's GPUs is refused now, not left waiting
    forever. Slurm: sbatch and submitit must be there (Slurm places the jobs, not this machine)."""
    if recipe.launch.get("executor", LOCAL) == SLURM:
        from w2s_core.supervision.executors.slurm import check_slurm

        check_slurm(f'{recipe.path}: [launch] executor = "slurm"')
        return []
    warnings = placement.check_launch(recipe.launch, str(recipe.path), pool=sup.slots.gpus())
    if recipe.launch.get("nodes", 1) > 1 or any(m.get("nodes", 1) > 1 for p in recipe.parts for m in p.models):
        warnings.append(
            f"{recipe.path}: `nodes` above 1 needs the slurm executor; the local executor runs each job on this machine"
        )
    return warnings


def read_submission(request: Submit) -> tuple[Recipe, Plan, dict[str, dict]]:
    """The submitted recipe text, parsed and planned as if in the submitter's folder (with the command
    line's [launch] overrides), and each job's spec to run (by job key) with local model folders made absolute."""
    # here, not at the top: `w2s queue` and `w2s cancel` import this package and never plan
    from w2s_core.spec.plan import build_plan
    from w2s_core.spec.recipe import parse_recipe

    try:
        raw = tomllib.loads(request.recipe_text)
    except tomllib.TOMLDecodeError as exc:  # the file was checked when submitted; this text may not have been
        raise InputError(f"{request.recipe_path} (as submitted): not valid TOML: {exc}") from None
    if request.launch:  # checked with the recipe's own [launch] keys (a bad override is a bad key)
        raw = {
            **raw,
            "launch": {**(raw.get("launch") if isinstance(raw.get("launch"), dict) else {}), **request.launch},
        }
    with working_dir(request.cwd or "."):  # relative model and data paths mean the submitter's folder
        recipe = parse_recipe(raw, Path(request.recipe_path), request.recipe_text)
        plan = build_plan(recipe)
        specs = {job.key: absolute_model_path(job.spec) for job in plan.jobs}
    return recipe, plan, specs


def queue_job(sup: Supervisor, job: Job, spec: dict, recipe: Recipe, run_id: int, request: Submit) -> bool:
    """Record one planned job, queued for this run unless it is done (and not forced) or active
    for another run. True when the run counts it as to do."""
    store = sup.store
    row = store.get_job(job.key)
    folder = runner.job_dir(store, job.key)
    done = bool(row and row["status"] == JobStatus.DONE and JobDir(folder).succeeded())
    fields = {
        "hash": job.key,
        "kind": job.kind,
        "model": job.model,
        "weak_model": job.weak_model,
        "loss": job.spec["loss"]["name"] if job.kind in ("transfer", "bootstrap") else None,
        "seed": job.seed,
        "spec": spec,
        "dir": str(folder.relative_to(store.root)),
    }
    if row is None:
        fields["recipe_hash"] = recipe.hash
    active = row is not None and row["status"] in ACTIVE  # queued or running for another run
    if (not done or request.force) and not active:
        fields.update(
            status=JobStatus.QUEUED,
            run_id=run_id,
            error=None,
            exit_code=None,
            signal=None,
            queued_at=time.time(),
            code=request.code,
            launch=launch_settings(recipe, request, job),
            provenance={**job_provenance(request.provenance), "recipe_hash": recipe.hash},
        )
    store.upsert_job(fields)
    for role in job.roles:
        store.link_job(recipe.hash, job.key, json.dumps(role, sort_keys=True))
    return active or not done or request.force


def launch_settings(recipe: Recipe, request: Submit, job: Job) -> dict:
    """What a queued job's row keeps of how to launch it: the accelerate config, the CPU slots it was
    submitted with, the placement keys the recipe sets (placement.py reads them from the row), and its
    executor's settings (executors.job_launch: nothing more for a local job)."""
    placed = {key: recipe.launch[key] for key in placement.PLACEMENT_KEYS if key in recipe.launch}
    return {
        "accelerate_config": recipe.launch.get("accelerate_config"),
        "parallel": request.parallel,
        **placed,
        **job_launch(recipe, job),
    }


@contextlib.contextmanager
def working_dir(path: str | Path) -> Iterator[None]:
    """Run the block in `path`, then go back (contextlib.chdir, which needs Python 3.11)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def absolute_model_path(spec: dict) -> dict:
    """The spec with a relative local model folder made absolute: jobs run in their own folder.
    (The job hash already names the resolved folder, so this changes no hash.)"""
    from w2s_core.spec.models import looks_local

    path = spec["model"].get("path", "")
    if not looks_local(path) or os.path.isabs(os.path.expanduser(path)):
        return spec
    return {**spec, "model": {**spec["model"], "path": os.path.abspath(os.path.expanduser(path))}}


def job_provenance(run_provenance: dict) -> dict:
    """A run's provenance without the dirty diff, which can be large: it is stored once, with the run
    (`w2s show JOB` shows it from there)."""
    code = {k: v for k, v in (run_provenance.get("code") or {}).items() if k != "git_diff"}
    return {**run_provenance, "code": code} if run_provenance.get("code") else dict(run_provenance)


# -- retry and cancel ------------------------------------------------------------------------------


def retry(sup: Supervisor, request: Retry) -> int:
    """Queue failed, cancelled or skipped jobs again, as a new run (once per request)."""
    store = sup.store
    existing = store.run_of_submission(request.id)
    if existing is not None:
        return existing
    rows = [r for r in map(store.get_job, request.jobs) if r and r["status"] in RETRYABLE]
    with store.transaction():
        recipe_hash = rows[0]["recipe_hash"] if rows else None
        run_id = store.start_run(recipe_hash, request.argv, request.provenance, submission=request.id)
        for row in rows:
            store.upsert_job(
                {
                    "hash": row["hash"],
                    "status": JobStatus.QUEUED,
                    "run_id": run_id,
                    "error": None,
                    "exit_code": None,
                    "signal": None,
                    "queued_at": time.time(),
                    "code": request.code or row["code"],
                }
            )
    sup.report.retried(run_id, len(rows))
    return run_id


def cancel(sup: Supervisor, request: Cancel) -> None:
    """Cancel queued jobs; kill running ones' whole process trees and wait until they are gone."""
    store = sup.store
    for job_hash in request.jobs:
        row = store.get_job(job_hash)
        if row is None:
            continue
        if job_hash in sup.running:
            attempt = sup.release(job_hash)
            sup.executor(attempt).cancel(store, attempt)
        elif row["status"] == JobStatus.RUNNING:  # started by a supervisor that is gone
            executor = sup.executors.of(row)
            executor.cancel(store, executor.reattach(store, row))
        elif row["status"] == JobStatus.QUEUED:
            store.set_job_status(job_hash, JobStatus.CANCELLED, error=runner.CANCELLED_BY_USER)
        else:
            continue
        sup.report.cancelled(row)
    sup.skip_blocked()
    sup.close_runs()


def annotate(sup: Supervisor, request: Annotate) -> None:
    """Tag, untag or note (issue 13): the store checks the tags and the target."""
    apply_annotation(sup.store, request)


def apply_annotation(store: Store, request: Annotate) -> int:
    """Write one Annotate request; returns what the store method returned (tags changed, or the note's id)."""
    if request.op == "note":
        return store.add_note(int(request.target), request.text)
    if request.op not in ("tag", "untag"):
        raise ValueError(f"annotate op {request.op!r} must be tag, untag or note")
    write = store.add_tags if request.op == "tag" else store.remove_tags
    return write(request.target_kind, request.target, request.tags)


HANDLERS: dict[type, Callable[[Supervisor, Request], int | None]] = {
    Submit: submit,
    Retry: retry,
    Cancel: cancel,
    Annotate: annotate,
}
