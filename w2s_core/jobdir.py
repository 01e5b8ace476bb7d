"""The job-folder contract: what a job's folder holds, who writes each file, and how to read it.

A job folder (`<results>/jobs/<hash>/`) is the only channel between the manager (supervisor,
store, CLI, TUI) and the training process (`python -m w2s_core.training JOB_DIR`):

    job.json          manager → child   the job's resolved spec (written before launch)
    events.jsonl      child → manager   one JSON object a line, appended and flushed as training goes
    predictions.json  child → manager   probabilities per split; read by downstream jobs for labels
                                        ({"probs", "labels"} per split, plus "index" when long inputs
                                        were dropped: see `prediction_index`)
    env.json          child → manager   device, process count, library versions
    result.json       child → manager   final metrics; written last, so its presence means success
    log.txt           both              the job's stdout and stderr (the wrapper redirects them)
    model/            child             a generative stage's finetuned checkpoint and tokenizer
                                        (`save_pretrained`), which its downstream jobs start from
    checkpoints/      child             the newest training checkpoint, `step-NNNNNNNNN/` (its
                                        `meta.json` says the step and the spec digest); kept across a
                                        retry so the job resumes, removed when result.json is written
                                        (`w2s_core.training.checkpoint`)
    requeue.json      child             the trainer stopped on SIGTERM/SIGUSR1 after saving a
                                        checkpoint, and should run again (it exits EXIT_REQUEUE)
    exit_status       wrapper           the shell exit status, written when the process ends

Every other module names these files and event keys through this one; nothing else spells them.
This module imports neither torch nor the store, so both sides can use it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOB_JSON = "job.json"
EVENTS = "events.jsonl"
PREDICTIONS = "predictions.json"
ENV = "env.json"
RESULT = "result.json"
LOG = "log.txt"
EXIT_STATUS = "exit_status"
MODEL_DIR = "model"  # a generative stage's checkpoint (w2s_core.training.generative)
CHECKPOINTS = "checkpoints"  # training checkpoints (w2s_core.training.checkpoint)
CHECKPOINT_PREFIX = "step-"  # one complete checkpoint: checkpoints/step-000000042/
CHECKPOINT_META = "meta.json"  # inside a checkpoint, written last: {"step", "digest", ...}
REQUEUE = "requeue.json"  # {"step", "signal"}: the trainer stopped on a signal and wants to run again

# The trainer's exit status after it stopped on SIGTERM/SIGUSR1 and saved a checkpoint: sysexits'
# EX_TEMPFAIL, "temporary failure", the job should run again (and will resume from the checkpoint).
# `accelerate launch` turns any non-zero child status into 1, so a supervisor that watches the
# launcher sees 1: it should also read `JobDir.wants_requeue()`.
EXIT_REQUEUE = 75

# What a job writes: removed before a retry so a new attempt never mixes with the old one
# (events.jsonl survives, cut at the checkpoint's step, when there is a checkpoint to resume).
OUTPUT_FILES = (EVENTS, PREDICTIONS, RESULT, ENV, LOG, EXIT_STATUS, REQUEUE)

LOG_TAIL_BYTES = 64 * 1024


class Event:
    """Keys of an events.jsonl line. `step` is the optimiser step; every other number is a metric."""

    STEP = "step"
    KIND = "event"  # "final" on the last line; absent on progress lines
    FINAL = "final"
    EXAMPLES = "examples"
    EPOCH = "epoch"
    LOSS = "loss"
    TRAIN_ACC = "train_acc"
    LR = "lr"
    EXAMPLES_PER_S = "examples_per_s"
    ALPHA = "alpha"
    TEST_ACC = "test_acc"
    TEST_AUROC = "test_auroc"
    # validation slice of the job's training half, labelled as the job is supervised (issue 9)
    VAL_ACC = "val_acc"
    VAL_AUROC = "val_auroc"
    VAL_LOSS = "val_loss"


class Result:
    """Keys of result.json. `test_acc`/`test_auroc` are the *selected* checkpoint's (the one whose
    predictions are written and labelled downstream; with `select = "final"` that is the last step).
    The `final_*` figures are the last step's; `oracle_*` is the best test accuracy over the eval
    points, the paper's optimistic early-stopping figure, reported and never used to select."""

    TEST_ACC = "test_acc"
    TEST_AUROC = "test_auroc"
    N_TEST = "n_test"
    SELECTED_STEP = "selected_step"
    FINAL_TEST_ACC = "final_test_acc"
    FINAL_TEST_AUROC = "final_test_auroc"
    ORACLE_TEST_ACC = "oracle_test_acc"
    ORACLE_STEP = "oracle_step"
    # examples held out of the training half for validation (`[train] val_size`); with it, result.json
    # also has the selected checkpoint's Event.VAL_LOSS / VAL_ACC / VAL_AUROC
    N_VAL = "n_val"
    # the accuracy of guessing uniformly over each test example's classes or candidate moves (mean 1/C):
    # 0.5 for two-way tasks (and absent from results recorded before K-class tasks, which were all two-way)
    CHANCE_ACC = "chance_acc"
    STEPS = "steps"
    TRAIN_SECONDS = "train_seconds"
    # the trained model's parameters (a probe: the frozen backbone's plus its head's; LoRA adapters not
    # counted): the x axis of `w2s plot`; absent from results recorded before it existed
    N_PARAMS = "n_params"
    # a prompt job (w2s_core.training.prompt): its demonstrations, and how many prompts (test and
    # the predict split) were cut on the left to fit max_length
    SHOTS = "shots"
    N_CUT_PROMPTS = "n_cut_prompts"
    # a generative stage (w2s_core.training.generative): the mean next-token loss per token over
    # its training texts before and after finetuning, and what it read
    LM_LOSS = "lm_loss"
    INITIAL_LM_LOSS = "initial_lm_loss"
    N_TEXTS = "n_texts"
    N_TOKENS = "n_tokens"

    @staticmethod
    def n_dropped(split: str) -> str:
        """Examples of `split` (A, B, test) left out as longer than some model reads (`[data] long_inputs =
        "drop"`): n_dropped_A, n_dropped_B, n_dropped_test; absent in the truncate modes."""
        return f"n_dropped_{split}"


def prediction_index(split_predictions: dict) -> list[int]:
    """The split positions a predictions.json entry's probabilities belong to: its "index" (written
    when long inputs were dropped, `[data] long_inputs = "drop"`), else 0, 1, ... in order."""
    index = split_predictions.get("index")
    return list(range(len(split_predictions["probs"]))) if index is None else list(index)


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def trim_events(path: Path, step: int) -> None:
    """Keep the progress lines of events.jsonl up to optimiser step `step` (none for 0), atomically.

    Used when a job resumes from the checkpoint of `step`: the lines an interrupted attempt wrote
    after it (and any final line) go, so the resumed run's lines follow on and each step is there once.
    A partial last line (the writer died mid-line) goes too.
    """
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # the bytes after the last newline are no line
    except FileNotFoundError:
        return
    kept = []
    for raw in lines:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        at = event.get(Event.STEP) if isinstance(event, dict) else None
        if isinstance(at, int) and at <= step and event.get(Event.KIND) != Event.FINAL:
            kept.append(raw + b"\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)


def tail_lines(path: Path, lines: int = 50, max_bytes: int = LOG_TAIL_BYTES) -> list[str]:
    """The last `lines` lines of a text file, reading at most `max_bytes` from its end; [] if absent."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


@dataclass(frozen=True)
class JobDir:
    """One job's folder; properties name its files, methods read and write them."""

    path: Path

    @property
    def job_json(self) -> Path:
        return self.path / JOB_JSON

    @property
    def events(self) -> Path:
        return self.path / EVENTS

    @property
    def predictions(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def env(self) -> Path:
        return self.path / ENV

    @property
    def result(self) -> Path:
        return self.path / RESULT

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def exit_status(self) -> Path:
        return self.path / EXIT_STATUS

    @property
    def model(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def requeue(self) -> Path:
        return self.path / REQUEUE

    # -- the manager's side ------------------------------------------------------------------

    def write_spec(self, spec: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.job_json, spec, indent=1)

    def clear_outputs(self) -> None:
        """Remove what an earlier attempt wrote, except its checkpoint (and the events up to its step).

        A job folder holding a checkpoint resumes from it; events.jsonl keeps the lines up to the
        checkpoint's step, so after the resumed run appends, the file has each step once (the store
        re-reads it from the start after `reset_job_outputs`).
        """
        step = self.checkpoint_step()
        for name in OUTPUT_FILES:
            if name == EVENTS and step is not None:
                trim_events(self.events, step)
            else:
                (self.path / name).unlink(missing_ok=True)

    def clear_checkpoints(self) -> None:
        """Remove every checkpoint: the job finished, or its checkpoint is stale."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (a `step-*` folder with its meta.json), or None."""
        done = [p for p in self.checkpoints.glob(CHECKPOINT_PREFIX + "*") if (p / CHECKPOINT_META).is_file()]
        return max(done, key=lambda p: p.name, default=None)  # zero-padded steps sort by name

    def checkpoint_meta(self) -> dict | None:
        """The newest checkpoint's meta.json ({"step", "digest", ...}), or None without a readable one."""
        latest = self.latest_checkpoint()
        try:
            return read_json(latest / CHECKPOINT_META) if latest else None
        except (OSError, ValueError):
            return None

    def checkpoint_step(self) -> int | None:
        """The optimiser step of the newest checkpoint, or None without one."""
        meta = self.checkpoint_meta()
        step = meta.get("step") if isinstance(meta, dict) else None
        return step if isinstance(step, int) else None

    def wants_requeue(self) -> bool:
        """Whether the trainer stopped on a signal after saving a checkpoint (it exited EXIT_REQUEUE):
        the job should run again, and will resume. Cleared with the outputs when it starts again."""
        return self.requeue.is_file()

    def succeeded(self) -> bool:
        return self.result.is_file()

    def read_result(self) -> dict:
        return read_json(self.result)

    def read_env(self) -> dict | None:
        try:
            return read_json(self.env)
        except (OSError, ValueError):
            return None

    # -- the training process's side ---------------------------------------------------------

    def read_spec(self) -> dict:
        return read_json(self.job_json)

    def read_predictions(self) -> dict:
        return read_json(self.predictions)

    def write_outputs(self, env: dict, predictions: dict, result: dict) -> None:
        """env and predictions first, result last: result.json's presence means the rest is complete."""
        write_json(self.env, env)
        write_json(self.predictions, predictions)
        write_json(self.result, result)


class EventWriter:
    """Appends events to events.jsonl, flushing each line so the manager can follow live."""

    def __init__(self, path: Path | None) -> None:
        self._file = open(path, "a") if path is not None else None  # None: not the main process

    def emit(self, event: dict) -> None:
        if self._file:
            self._file.write(json.dumps(event) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
