"""Executors: how a job's command runs once the supervisor decided it may start.

The supervisor's loop (loop.py) decides what runs when and is the only writer of the store; an
executor starts a job's command somewhere and says how it is doing. Two:

    local.py        `LocalExecutor` (the default): a detached process on this machine, on the device
                    slot placement gave it (runner.py, processes.py): w2s's behaviour before executors
    slurm.py        `SlurmExecutor`: an sbatch job through submitit, on the nodes Slurm gives it
    sbatch.py       what a Slurm job asks for (submitit's parameters from [launch]) and its command,
                    multi-node launches included
    slurm_state.py  Slurm's state of a job: submitit's (sacct), else squeue's, else scontrol's
    job_command.py  what runs inside the Slurm job: the command, its log and exit record, its signals

Which one runs a job is `[launch] executor` ("local" or "slurm"; `w2s run --executor` overrides),
recorded with the job's launch settings when it is queued, and on its row (`executor`) once it starts,
so a supervisor restarted later re-attaches each running job through the executor that started it.
Every executor gives the same `Executor` interface; the job's folder, its events and its end are read
the same way whatever runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from w2s_core.errors import W2SError
from w2s_core.spec.launch import EXECUTORS, SLURM_KEYS

if TYPE_CHECKING:
    from w2s_core.spec.plan import Job
    from w2s_core.spec.recipe import Recipe
    from w2s_core.store import Store
    from w2s_core.store.rows import JobRow
    from w2s_core.supervision.runner import Attempt
    from w2s_core.supervision.slots import Slot

LOCAL, SLURM = EXECUTORS


class SubmitError(W2SError):
    """A job could not be handed to its executor (sbatch refused it, or Slurm is not there): the job
    fails with this message, and the supervisor goes on with the others."""


class Executor(Protocol):
    """What the supervisor asks of an executor, for one job at a time."""

    name: str

    def start(self, store: Store, row: JobRow, slot: Slot) -> Attempt:
        """Start a queued job (its folder prepared, its row set running); raise SubmitError if it cannot."""

    def poll(self, attempt: Attempt) -> int | str | None:
        """None while the job runs (or waits in the executor's queue); then its exit status, a
        diagnosis.LOST, or the executor's own end state (diagnosis.SLURM_REASONS)."""

    def follow(self, store: Store, attempt: Attempt) -> None:
        """Store what the job wrote (its events) and what the executor says of it since the last look."""

    def finish(self, store: Store, attempt: Attempt, status: int | str) -> bool:
        """Record an ended job: results on success, else a diagnosis. Returns success."""

    def cancel(self, store: Store, attempt: Attempt) -> None:
        """Stop the job, return once it is gone, and record it cancelled."""

    def reattach(self, store: Store, row: JobRow) -> Attempt:
        """Follow a job a previous supervisor started (it may have ended meanwhile)."""

    def describe_command(self, row: dict) -> str:
        """The command the job runs, as it would be started now (for --dry-run and provenance)."""


def launch_of(row: dict) -> dict:
    return row.get("launch") or {}


def executor_name(row: dict) -> str:
    """The executor a job runs on: the one that started it (a running job), else the one it was queued for."""
    return row.get("executor") or launch_of(row).get("executor") or LOCAL


def job_nodes(recipe: Recipe, job: Job) -> int:
    """Nodes one job runs on: its model entry's `nodes` (in the suite task that planned it), else
    [launch] nodes, else 1."""
    task = job.roles[0].get("task") if job.roles else None
    parts = [p for p in recipe.parts if task is None or p.task == task] or recipe.parts
    for part in parts:
        entry = next((m for m in part.models if m["name"] == job.model), None)
        if entry is not None and "nodes" in entry:
            return int(entry["nodes"])
    return int(recipe.launch.get("nodes", 1))


def job_launch(recipe: Recipe, job: Job) -> dict[str, Any]:
    """What a job's launch settings keep of its executor: for a Slurm job the executor, the Slurm keys
    of [launch], its nodes, and how many Slurm jobs may be submitted at once (`[launch] parallel`;
    absent: every ready job). A local job gains nothing here (its row reads as before executors),
    except `nodes` when set above 1 (warned about: it runs on one node)."""
    launch = recipe.launch
    nodes = job_nodes(recipe, job)
    if launch.get("executor", LOCAL) != SLURM:
        return {"nodes": nodes} if nodes > 1 else {}
    keys = {k: launch[k] for k in SLURM_KEYS if k in launch}
    return {"executor": SLURM, **keys, "nodes": nodes, "slurm_parallel": launch.get("parallel")}


class Executors:
    """The supervisor's executors, by name; the Slurm one is built when first needed (it imports submitit)."""

    def __init__(self, echo=print, **given: Executor) -> None:
        self.echo = echo
        self.built: dict[str, Executor] = dict(given)

    def get(self, name: str) -> Executor:
        if name not in self.built:
            if name == LOCAL:
                from w2s_core.supervision.executors.local import LocalExecutor

                self.built[name] = LocalExecutor()
            elif name == SLURM:
                from w2s_core.supervision.executors.slurm import SlurmExecutor

                self.built[name] = SlurmExecutor(echo=self.echo)
            else:
                raise W2SError(f"unknown executor {name!r}; one of {', '.join(EXECUTORS)}")
        return self.built[name]

    def of(self, row: dict) -> Executor:
        return self.get(executor_name(row))
