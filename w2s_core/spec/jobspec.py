"""The JSON shapes of a planned job: its spec (job.json, the store's `spec`) and its roles (`recipe_jobs`).

Plain dicts, as the trainer and the store read them; these TypedDicts only name their keys (plan.py
builds them). `MODEL_IDENTITY_KEYS` and `length_filter` are plan.py's.
"""

from __future__ import annotations

from typing import TypedDict


class GtRole(TypedDict):
    role: str  # "gt"
    model: str
    seed: int


class TransferRole(TypedDict):
    role: str  # "transfer"
    weak: str
    strong: str
    method: str
    seed: int


class BootstrapRole(TypedDict):
    role: str  # "bootstrap"
    chain: list[str]
    method: str
    step: int  # 1 for the first transfer of the chain
    seed: int


class PromptRole(TypedDict):
    role: str  # "prompt"
    model: str  # "<base>:<shots>-shot", the name `pairs` and the PGR table use
    base: str  # the prompted model
    shots: int
    weak: str  # the model whose GT job is the PGR row's weak figure
    seed: int


class GenerativeRole(TypedDict):
    role: str  # "generative"
    model: str
    seed: int


# Why a recipe wants a job; one job can have several (a chain's first step is also a pair's transfer).
# A suite's roles also carry "task": the name of the [[task]] that wants the job; a grid's carry "grid":
# its point's {swept key: value} (absent without a grid, so older roles read the same).
Role = GtRole | TransferRole | BootstrapRole | PromptRole | GenerativeRole

# Where a non-GT job's labels come from: the upstream job's key and the split it predicted.
Labels = TypedDict("Labels", {"from": str, "split": str})


class LossSpec(TypedDict):
    name: str
    params: dict[str, float]


class _JobSpecBase(TypedDict):
    model: dict  # MODEL_IDENTITY_KEYS of the recipe's model entry
    train: dict
    data: dict
    seed: int
    train_split: str  # "A" | "B"; a generative stage: "AB"
    labels: Labels | str  # "gt" for ground truth; a generative stage: "none"
    predict_split: str | None  # a generative stage predicts nothing
    loss: LossSpec


class JobSpec(_JobSpecBase, total=False):
    """What the trainer reads from job.json. The optional keys are absent unless used, so the spec
    (and key) of a job that does not use them is what it was before they existed."""

    # Only with `[data] long_inputs = "drop"` (see `length_filter`): every model of the recipe, whose
    # too-long inputs the job leaves out of every split.
    length_filter: list[dict]
    stage: str  # "prompt" | "generative"; absent: a trained job
    prompt: dict  # {"shots": k}
    generative: dict  # {"text": "task" | {"path", "sha256"}, "epochs", "lr"}
    init: dict  # {"from": <generative job key>}: GT, transfer and bootstrap jobs of a staged model
