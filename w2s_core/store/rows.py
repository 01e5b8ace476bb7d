"""The shapes of the rows the store returns, as TypedDicts: plain dicts at run time, typed for readers.

Statuses come back as the plain strings SQLite holds; they compare equal to `w2s_core.status`
members (`row["status"] == JobStatus.DONE`). JSON columns come back decoded.
"""

from __future__ import annotations

from typing import Any, TypedDict


class RecipeRow(TypedDict):
    hash: str
    name: str
    path: str | None
    text: str
    created_at: float


class RecipeSummary(TypedDict):
    """A recipe in the TUI's list: `RecipeRow` without its text."""

    hash: str
    name: str
    path: str | None
    created_at: float


class RunRow(TypedDict):
    id: int
    recipe_hash: str | None
    started_at: float
    finished_at: float | None
    status: str  # a RunStatus value
    argv: list[str] | None
    provenance: dict[str, Any] | None
    submission: str | None


class JobRow(TypedDict):
    """A job as `Store.get_job` and `Store.jobs` return it; `dir` is absolute."""

    hash: str
    recipe_hash: str | None
    run_id: int | None
    kind: str  # gt, transfer, bootstrap, prompt or generative
    model: str
    weak_model: str | None
    loss: str | None
    seed: int
    chain: list[str] | None
    step: int | None
    spec: dict[str, Any]
    status: str  # a JobStatus value
    pid: int | None
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    dir: str | None
    error: str | None
    provenance: dict[str, Any] | None
    pgid: int | None
    proc_start: float | None
    device: str | None
    signal: int | None
    code: str | None
    launch: dict[str, Any] | None
    queued_at: float | None
    wait_reason: str | None  # why a queued job cannot start yet (placement); None: only its turn
    executor: str | None  # "local" or "slurm" (w2s_core.supervision.executors); None: never started, or before issue 12
    slurm_job_id: str | None  # the Slurm job id of its latest submission
    slurm_state: str | None  # Slurm's last reported state of it ("PENDING", "RUNNING", "COMPLETED", ...)
    requeues: int  # times it was queued again after stopping on a signal with a checkpoint


class MetricRow(TypedDict):
    """One numeric field of one events line; `seq` is the line's index in the events file."""

    seq: int
    step: int | None
    key: str
    value: float


class Role(TypedDict, total=False):
    """Why a recipe planned a job (recorded at planning): `role` is gt, transfer, bootstrap, prompt
    (`model` "<base>:<shots>-shot", `base`, `shots`, `weak`) or generative; a suite's roles also
    name their `task`."""

    role: str
    model: str
    seed: int
    weak: str
    strong: str
    method: str
    chain: list[str]
    step: int
    base: str
    shots: int
    task: str


class PlannedJob(TypedDict):
    """A job a recipe planned, with its role, status and final results (analysis's input)."""

    job_hash: str
    role: Role
    status: str  # a JobStatus value
    results: dict[str, float]
    dataset: str | None  # [data] name, or its file's path
    data_kind: str  # classify, pairwise or chess
    init: str | None  # the key of the generative stage the job started from


class JobListRow(TypedDict):
    """A job in the TUI's paged lists, with its latest metrics; `dir` is relative to the results dir."""

    hash: str
    kind: str
    model: str
    weak_model: str | None
    loss: str | None
    seed: int
    status: str  # a JobStatus value
    wait_reason: str | None  # why a queued job cannot start yet (placement)
    executor: str | None  # "local" or "slurm"; None before it first started
    slurm_job_id: str | None
    slurm_state: str | None
    pid: int | None
    started_at: float | None
    finished_at: float | None
    dir: str | None
    recipe_hash: str | None
    recipe: str | None  # the recipe's name
    dataset: str | None
    n_train: int | None
    epochs: float | None
    role: Role | None
    final_acc: float | None
    last_loss: float | None
    last_examples: float | None
    last_examples_per_s: float | None
    last_test_acc: float | None
    total_examples: int | None
    gpu_peak_mb: float | None  # the most GPU memory its processes held at one sample (MiB), None if never sampled
    gpu_util_mean: float | None  # the mean utilisation of the GPUs it held memory on, over its samples
    tags: list[str]  # its own tags, its run's and those of the recipes that planned it (`w2s tag`)


class TagRow(TypedDict):
    """A tag on a run (target: its id as text), a job (its full hash) or a recipe (its hash)."""

    kind: str  # run, job or recipe
    target: str
    tag: str
    created_at: float


class NoteRow(TypedDict):
    """A note on a run (`w2s note`)."""

    id: int
    run_id: int
    text: str
    created_at: float
