"""The recipe schema: every table's keys with their checks and defaults, aliases, and the typed entries.

`recipe.py` validates a TOML file against these tables; the planner and the CLI read the defaults
from here. A new recipe key goes in the table it belongs to (and, if leaving it at its default
must not change existing job keys, in UNHASHED_TRAIN_DEFAULTS or UNHASHED_DATA_DEFAULTS).
"""

from __future__ import annotations

from typing import Any, TypedDict

from w2s_core.errors import did_you_mean
from w2s_core.spec import launch
from w2s_core.spec.checks import (
    Check,
    boolean,
    fraction,
    generative_text,
    lora_value,
    nonneg_int,
    nonneg_int_list,
    nonneg_num,
    one_of,
    pos_int,
    pos_num,
    str_list,
    string,
    table,
)

DATA_KEYS: dict[str, Check] = {
    "name": string,
    "path": string,
    "text_column": string,
    "label_column": string,
    "n_train": pos_int,
    "n_test": pos_int,
    "seed": nonneg_int,
    "balance": boolean,
    "revision": string,
    "n_total": pos_int,
    "noise": fraction,
    "train_pool": one_of("per_seed", "fixed"),
    "long_inputs": one_of("drop", "truncate_left", "truncate_right"),
    # issue 10: what one example is (w2s_core.data.types: DATA_KINDS)
    "kind": one_of("classify", "pairwise", "chess"),
    "prompt_column": string,  # pairwise local files: the shared prompt (optional column)
    "chosen_column": string,  # pairwise local files: the preferred reply
    "rejected_column": string,  # pairwise local files: the other reply
    "template": string,  # prompting: how an input is shown, with "{text}" where it goes
    "label_words": str_list,  # prompting: one word per class, in label order
}
# long_inputs: what happens to an input longer than a model's max_length (w2s_core.training.lengths).
# "drop" (the reference's choice) leaves it out of every split for every model of the recipe;
# "truncate_right" is what w2s did before the option existed, and its jobs keep their old keys.
DATA_DEFAULTS = {
    "text_column": "text",
    "label_column": "label",
    "seed": 0,
    "balance": False,
    "long_inputs": "drop",
    "kind": "classify",
}

# Which checkpoint a job keeps (w2s_core.training.evaluate): the last step, or the eval point with the
# lowest validation loss / highest validation AUROC on `val_size` held-out examples of its training half.
SELECT = ("final", "val_loss", "val_auroc")
# `[train] optimizer`, built in w2s_core.training.optimizers (the module docstring says what each does).
OPTIMIZERS = ("adam", "adamw", "adafactor")


def optimizer_name(v: Any) -> str | None:
    """A check like one_of(*OPTIMIZERS) that also names the closest choice ("AdamW" -> 'adamw')."""
    if v in OPTIMIZERS:
        return None
    return "one of " + ", ".join(repr(o) for o in OPTIMIZERS) + did_you_mean(str(v).lower(), OPTIMIZERS)


TRAIN_KEYS: dict[str, Check] = {
    "mode": one_of("finetune", "probe"),
    "epochs": pos_num,
    "lr": pos_num,
    "batch_size": pos_int,
    "minibatch_size": pos_int,
    "max_length": pos_int,
    "schedule": one_of("cosine", "linear", "constant"),
    "lr_warmup_frac": fraction,
    "weight_decay": nonneg_num,
    "optimizer": optimizer_name,
    "dtype": one_of("auto", "float32", "bfloat16", "float16"),
    "lora": lora_value,
    "grad_checkpointing": boolean,
    "eval_every": nonneg_int,
    "train_with_dropout": boolean,
    "val_size": nonneg_int,
    "select": one_of(*SELECT),
    # issue 11, opt-in trainer speed (w2s_core.training.batching): each changes which examples share
    # an optimiser step (group_by_length) or the kernels (compile), so each is hashed when on
    "group_by_length": boolean,
    "compile": boolean,
    # issue 12: save a training checkpoint every N optimiser steps (0: only on SIGTERM/SIGUSR1);
    # never hashed, as it changes no result (w2s_core.training.checkpoint)
    "checkpoint_every": nonneg_int,
}
TRAIN_DEFAULTS = {
    "mode": "finetune",
    "schedule": "cosine",
    "lr_warmup_frac": 0.0,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "lora": False,
    "eval_every": 0,
    "train_with_dropout": False,
    "val_size": 0,
    "select": "final",
}
# Keys added after jobs were first hashed, with the value that reproduces the old behaviour. While a key
# has that value it is left out (`without_defaults`), so finished jobs keep their keys: a train key out
# of `plan.job_key`'s hash, a data key out of the job's spec itself (`plan.job_data`: job.json unchanged).
# (A loss parameter's are `spec.losses.UNHASHED_LOSS_DEFAULTS`.)
UNHASHED_TRAIN_DEFAULTS = {
    "optimizer": "adam",
    "train_with_dropout": False,
    "val_size": 0,
    "select": "final",
    "group_by_length": False,
    "compile": False,
    "checkpoint_every": 0,
}
# Train keys that never enter a job key, whatever their value: how a job runs, not what it computes.
NEVER_HASHED_TRAIN = ("checkpoint_every",)
UNHASHED_DATA_DEFAULTS = {"long_inputs": "truncate_right", "kind": "classify"}


# Keys a model's registry entry supplies and a recipe may override per model.
MODEL_TRAIN_KEYS = (
    "mode",
    "epochs",
    "lr",
    "batch_size",
    "minibatch_size",
    "max_length",
    "dtype",
    "grad_checkpointing",
    "optimizer",
)

MODEL_KEYS: dict[str, Check] = {
    "name": string,
    "path": string,
    "revision": string,
    "arch": one_of("causal", "encoder"),
    "trust_remote_code": boolean,
    "tiny": table,
    "nodes": pos_int,  # issue 12: nodes per job of this model on Slurm (w2s_core.spec.launch); no part of a key
    **TRAIN_KEYS,
}
TRANSFER_KEYS: dict[str, Check] = {"name": string, "loss": string, "lr": pos_num, "epochs": pos_num}
# Train keys a [[transfer]] or [[bootstrap]] table may override for its own jobs (the reference's
# transfer_lr and transfer_epochs); the GT jobs keep the model's settings.
METHOD_TRAIN_KEYS = ("lr", "epochs")
RELABEL = ("alternate", "same")
CHAIN_KEYS: dict[str, Check] = {
    "chain": str_list,
    "loss": string,
    "name": string,
    "relabel": one_of(*RELABEL),
}
# Launch settings say how and where jobs run, never what they compute: they are no part of a job key.
# issue 11, placement (w2s_core.supervision.placement): GPUs a job gets at once (one process each), and
# the memory (GiB) each must have free before it starts (0: no check).
# issue 12, executors (w2s_core.spec.launch says what each key means): where jobs run, what a Slurm job
# asks for (`parallel` also bounds the Slurm jobs submitted at once), and `nodes` per job.
LAUNCH_KEYS: dict[str, Check] = {
    "accelerate_config": string,
    "parallel": pos_int,
    "gpus_per_job": pos_int,
    "min_free_gb": nonneg_num,
    "executor": one_of(*launch.EXECUTORS),
    "partition": string,
    "cpus_per_task": pos_int,
    "mem_gb": pos_num,
    "time": launch.time_check,
    "account": string,
    "qos": string,
    "sbatch": launch.sbatch_check,
    "nodes": pos_int,
    # issue 14, the memory plan (w2s_core.spec.launch says what each means)
    "gpu_memory_gb": pos_num,
    "fsdp": launch.fsdp_check,
}
# Names users bring from other tools, mapped to ours for the did-you-mean hint.
ALIASES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_len": "max_length",
    "max_ctx": "max_length",
    "lr_schedule": "schedule",
    "micro_batch_size": "minibatch_size",
    "gradient_checkpointing": "grad_checkpointing",
    "seed": "seeds",
    "model": "models",
    "method": "loss",
    "aux_coef": "alpha",
    "transfer_lr": "lr",
    "transfer_epochs": "epochs",
    "optim": "optimizer",
    "optimizer_name": "optimizer",
}
# [[prompt]]: prompting baselines of causal LMs (plan.py: a job per model and number of shots);
# `weak` names the model whose GT job is the row's weak figure (default: the recipe's first model).
PROMPT_KEYS: dict[str, Check] = {"models": str_list, "shots": nonneg_int_list, "weak": string}
PROMPT_DEFAULTS = {"shots": [0]}
# [[generative]]: next-token finetuning of a model on the task's unlabelled inputs ("task") or a local
# text file ({path = "..."}), a stage every GT/transfer/bootstrap job of the model starts from.
GENERATIVE_KEYS: dict[str, Check] = {"models": str_list, "text": generative_text, "epochs": pos_num, "lr": pos_num}
GENERATIVE_DEFAULTS = {"text": "task", "epochs": 1}  # lr: the model's own (its [train]/registry lr)
# What a [[task]] of a suite may hold: a sub-recipe, less what only the suite's top level sets.
TASK_KEYS = ("name", "description", "data", "train", "models", "pairs", "transfer", "bootstrap", "prompt", "generative")
# What a suite's top level may hold (the rest belongs in each [[task]]).
SUITE_KEYS = ("name", "description", "train", "transfer", "seeds", "launch", "task")
TOP_KEYS = (
    "name",
    "description",
    "data",
    "train",
    "models",
    "pairs",
    "transfer",
    "bootstrap",
    "prompt",
    "generative",
    "task",
    "seeds",
    "launch",
)


class ModelEntry(TypedDict, total=False):
    """One resolved model: registry defaults <- [train] <- the recipe's own entry (MODEL_KEYS)."""

    name: str
    path: str
    revision: str | None
    arch: str | None
    trust_remote_code: bool
    tiny: dict | None
    mode: str
    epochs: float
    lr: float
    batch_size: int
    minibatch_size: int
    max_length: int
    dtype: str
    grad_checkpointing: bool
    optimizer: str
    lora: bool | dict
    nodes: int


class _MethodBase(TypedDict):
    name: str
    loss: str
    params: dict[str, float]


class Method(_MethodBase, total=False):
    """A [[transfer]] method: its display name, the loss, the loss's parameters with defaults filled in,
    and (only when the table sets any) its METHOD_TRAIN_KEYS overrides for the jobs it trains."""

    train: dict[str, float]


class PromptStage(TypedDict):
    """A [[prompt]] table: its causal models, the numbers of demonstrations, and the row's weak model."""

    models: list[str]
    shots: list[int]
    weak: str


class GenerativeStage(TypedDict):
    """One model's [[generative]] stage: "task" or {"path": absolute, "sha256": its content's}, epochs, lr."""

    model: str
    text: str | dict
    epochs: float
    lr: float


class Chain(Method):
    """A [[bootstrap]] chain: a method plus its models (weak -> strong) and how steps relabel."""

    models: list[str]
    relabel: str  # "alternate" | "same"
