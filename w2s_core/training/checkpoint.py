"""Checkpoint and resume: a training job that stops mid-way goes on from its newest checkpoint and
ends with the same predictions as a run that never stopped. (A checkpoint here is the training
state; the eval point `[train] select` keeps, `evaluate.py`'s "kept checkpoint", is only predictions.)

When a checkpoint is taken:
- every `[train] checkpoint_every` optimiser steps (0, the default: only on a signal); the key is
  never hashed (`spec.schema.NEVER_HASHED_TRAIN`): it changes how a job runs, not what it computes;
- on SIGTERM or SIGUSR1 (Slurm sends one before a time limit or a preemption, `--signal=USR1@90`;
  the local supervisor's cancel sends SIGTERM). The signal only sets a flag (`Stopper`); the current
  optimiser step finishes (its minibatches, the update, its events line, its eval point when due),
  then the job saves a checkpoint, writes `requeue.json` and exits `jobdir.EXIT_REQUEUE` (75).
  Under DDP the flag travels with the step's reduced loss figures (`progress.stop_row`), so all
  processes stop at the same step (on a GPU, where figures are read a step late, the step after).
  A signal before training starts (loading data, the model, probe features) exits 75 at once: there
  is nothing new to save, and an older checkpoint stays for the next attempt. One after the last
  step is noted and ignored: the job has one evaluation and its outputs left, and finishes.
A checkpoint is only taken at an optimiser-step boundary, so no accumulated gradient is ever lost.

What a checkpoint holds (`checkpoints/step-NNNNNNNNN/`, `jobdir.JobDir.latest_checkpoint`), and why:
- the model and the optimizer state: `Accelerator.save_state`, accelerate's own way, so DDP, FSDP
  and DeepSpeed each save (and load) theirs (FSDP and DeepSpeed untested here; a sharded state only
  resumes on as many processes). The whole state dict when every parameter trains (a
  full finetune, a probe's head); with frozen parameters (LoRA) only the trainable ones, as the
  frozen ones are loaded again from the model's files. The learning-rate schedule has no state of
  its own: the lr, like logconf's α, is a function of `step_frac` = examples seen / total, so the
  loop's counters are its position.
- `rng-<process>.pt`: each process's python, numpy, torch CPU and CUDA generator states, which
  dropout (`train_with_dropout`) draws from. accelerate saves them too but skips them silently when
  they cannot be loaded, so we keep and restore our own.
- `loop.pt`: the counters (`step`, `seen`), the seconds trained so far, the batch-order generator's
  state, and the `Selection`: the eval point `[train] select` keeps, with its probabilities, and the
  oracle's step and figures; the eval points before the checkpoint are not measured again.
- `meta.json`, written last: step, digest and process count, readable without torch.
The batch order is replayed, not stored: the resumed loop draws `training_steps` from the seed and
skips the checkpoint's `step` optimiser steps (index lists only); the generator's state and the
examples seen must then equal the saved ones, so an order that changed refuses to resume.

Writing is atomic: every process saves into `checkpoints/.tmp-step-N/`; once all have, the main
process writes loop.pt and meta.json, renames the folder to `step-N` and removes the older ones.
Only the newest checkpoint is kept; a folder without meta.json is never read.

Resuming (`Checkpointer.open`, `restore`): a checkpoint whose digest differs from the job's is stale
and removed, and the job starts at step 0. The digest hashes job.json (less `checkpoint_every` and
the upstream folders' paths), the upstream's predictions and the generative stage's saved model
files (size and time), the source of the code a job trains with and the torch version: `w2s run
--force` after a code change, or a spec that changed under the same folder, never resumes an old
state. events.jsonl is cut to the checkpoint's step (`jobdir.trim_events`; to nothing at step 0),
so the resumed run's lines follow on and each step is there once. When result.json is written the
checkpoints are removed.

The references: openai/weak-to-strong trains each model in one go (it reuses finished results, never
a half-trained model); EleutherAI/w2s trains through Hugging Face's Trainer, whose checkpoints
(`save_steps`, `resume_from_checkpoint`) hold the same kinds of state as ours (model, optimizer,
scheduler, RNG, the data position by skipping batches). A resumed job's predictions equal
the uninterrupted run's (`tests/test_checkpoint.py`: bit for bit on a CPU, one process or two under
DDP; bit for bit on an H200 too in a one-off check, though GPU kernels may add float rounding). The
generative stage (`generative.py`) and prompting jobs have no checkpoints: they start over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate import Accelerator

import w2s_core
from w2s_core.errors import W2SError
from w2s_core.jobdir import CHECKPOINT_META, CHECKPOINT_PREFIX, EXIT_REQUEUE, JobDir, trim_events, write_json
from w2s_core.spec.schema import NEVER_HASHED_TRAIN
from w2s_core.training.evaluate import Point, Selection

if TYPE_CHECKING:
    from w2s_core.training.loop import Loop

LOOP_STATE = "loop.pt"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
PATH_KEYS = ("upstream_dir", "init_dir")  # where the upstream jobs lie: hashed by content instead
CODE_SKIPPED = ("cli", "supervision", "store")  # w2s_core packages a training process never runs
SETUP, TRAINING, FINISHING = "setup", "training", "finishing"
SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # their saved state depends on the process count


# --- what a checkpoint belongs to -----------------------------------------------------------


def spec_digest(spec: dict) -> str:
    """The digest a checkpoint must carry to be resumed: job.json, what it reads upstream, the code, torch."""
    kept = {k: v for k, v in spec.items() if k not in PATH_KEYS}
    kept["train"] = {k: v for k, v in spec.get("train", {}).items() if k not in NEVER_HASHED_TRAIN}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode())
    if spec.get("upstream_dir"):
        digest.update(file_bytes(JobDir(Path(spec["upstream_dir"])).predictions))
    if spec.get("init_dir"):
        model = JobDir(Path(spec["init_dir"])).model
        for path in sorted(model.rglob("*")) if model.is_dir() else []:
            stat = path.stat()
            digest.update(f"{path.relative_to(model)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(code_fingerprint().encode())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()


def file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def code_fingerprint() -> str:
    """sha256 of the w2s_core sources a training process runs (all but the manager's packages)."""
    root = Path(w2s_core.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in CODE_SKIPPED:
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- signals --------------------------------------------------------------------------------


@dataclass
class Stopper:
    """SIGTERM/SIGUSR1 -> a flag the loop reads at each optimiser step's end (module docstring)."""

    folder: JobDir
    main: bool  # the main process writes requeue.json
    signum: int | None = None
    phase: str = SETUP
    previous: dict = field(default_factory=dict)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only lets the main thread set handlers; such a caller keeps its own
        for sig in STOP_SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def handle(self, signum: int, frame) -> None:
        self.signum = signum
        print(f"received {signal.Signals(signum).name}: stopping at this optimiser step's end", file=sys.stderr)
        if self.phase == SETUP:
            self.requeue(None)

    def requested(self, acc: Accelerator, signalled: bool) -> bool:
        """Whether any process was signalled: this one's flag, or under DDP `signalled`, what every process
        read from the step figures they reduce together (`progress.stop_row`), so all stop at the same step."""
        return self.signum is not None if acc.num_processes == 1 else signalled

    def requeue(self, step: int | None) -> None:
        """Say why the job stops (`requeue.json`) and exit EXIT_REQUEUE."""
        if self.main:
            name = signal.Signals(self.signum).name if self.signum else None
            write_json(self.folder.requeue, {"step": step, "signal": name})
        raise SystemExit(EXIT_REQUEUE)


# --- saving and restoring -------------------------------------------------------------------


@dataclass
class Checkpointer:
    """The job's checkpoints: which one it resumes from, when it saves, and cleaning up at the end."""

    folder: JobDir
    acc: Accelerator
    digest: str
    every: int
    stopper: Stopper
    source: Path | None = None  # the checkpoint this attempt resumes from
    state: dict | None = None  # its loop.pt, once restored
    gen: torch.Generator | None = None
    frozen: bool = False  # some parameters do not train: only the trainable ones are saved

    @classmethod
    def open(cls, folder: JobDir, spec: dict, acc: Accelerator) -> Checkpointer:
        """Install the signal handlers, pick the checkpoint to resume (a stale one is removed) and cut
        events.jsonl at its step; call before anything appends to events.jsonl."""
        stopper = Stopper(folder, acc.is_main_process)
        stopper.install()
        ckpt = cls(folder, acc, spec_digest(spec), int(spec["train"].get("checkpoint_every", 0)), stopper)
        meta = folder.checkpoint_meta()
        if meta is not None and ckpt.resumable(meta):
            ckpt.source = folder.latest_checkpoint()
        if acc.is_main_process:
            if ckpt.source is None and folder.checkpoints.exists():
                print(f"removing {folder.checkpoints}: no checkpoint there belongs to this job", file=sys.stderr)
                folder.clear_checkpoints()
            trim_events(folder.events, meta["step"] if ckpt.source else 0)
            folder.requeue.unlink(missing_ok=True)  # this attempt is the rerun it asked for
        acc.wait_for_everyone()
        return ckpt

    def resumable(self, meta: dict) -> bool:
        """Same digest; and for a sharded state (FSDP, DeepSpeed) the same number of processes."""
        if meta.get("digest") != self.digest:
            return False
        sharded = any(s in str(self.acc.distributed_type).upper() for s in SHARDED)
        return not sharded or meta.get("processes") == self.acc.num_processes

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.stopper.restore()

    def restore(self, loop: Loop) -> None:
        """Load the checkpoint into the prepared module, optimizer and loop; register the save hook."""
        model = self.acc.unwrap_model(loop.module)  # accelerate saves the model by its unwrapped names
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        self.frozen = len(trainable) < sum(1 for _ in model.parameters())
        if self.frozen:
            self.acc.register_save_state_pre_hook(lambda models, weights, out: keep_only(weights, trainable))
        if self.source is None:
            return
        self.acc.load_state(str(self.source), **({"strict": False} if self.frozen else {}))
        if self.frozen:
            check_weights(self.source, trainable)
        rng = self.source / f"rng-{self.acc.process_index}.pt"
        set_rng_state(torch.load(rng if rng.is_file() else self.source / "rng-0.pt", weights_only=False))
        self.state = torch.load(self.source / LOOP_STATE, weights_only=False)
        loop.step, loop.seen = self.state["step"], self.state["seen"]
        loop.t0 = time.time() - self.state["elapsed"]
        loop.selection = selection_from(loop.selection.select, self.state["selection"])
        print(f"resuming from {self.source} at optimiser step {loop.step}", file=sys.stderr)

    def begin(self, loop: Loop, steps: Iterator[list[list[int]]], gen: torch.Generator) -> Iterator[list[list[int]]]:
        """The optimiser steps left: those after the checkpoint's, checked against its batch order."""
        self.gen = gen
        self.stopper.phase = TRAINING
        if self.state is None:
            return steps
        done = seen = 0
        for group in islice(steps, loop.step):  # index lists only: no example is read
            done, seen = done + 1, seen + sum(len(chunk) for chunk in group)
        if done != loop.step or seen != loop.seen or not torch.equal(gen.get_state(), self.state["generator"]):
            raise W2SError(
                f"{self.source}: the batch order replayed to step {loop.step} differs from the checkpoint's "
                f"({seen} examples seen, the checkpoint says {loop.seen}); remove {self.folder.checkpoints} "
                "to train this job from the start"
            )
        return steps

    def after_step(self, loop: Loop, flush: Callable[[], None] = lambda: None) -> None:
        """At an optimiser step's end: save when due or signalled; after a signal, exit EXIT_REQUEUE.

        `flush` writes the step's events.jsonl line first when it is still pending (training/progress.py),
        so the saved step's line is in the file a resumed job trims to."""
        stop = self.stopper.requested(self.acc, loop.signalled)
        if stop or (self.every and loop.step % self.every == 0):
            flush()
            self.save(loop)
        if stop:
            self.stopper.requeue(loop.step)

    def end(self) -> None:
        """Training is over: a signal now lets the job finish its evaluation and outputs."""
        self.stopper.phase = FINISHING

    def finish(self) -> None:
        """result.json is written: the checkpoints are no longer needed."""
        if self.acc.is_main_process:
            self.folder.clear_checkpoints()

    def save(self, loop: Loop) -> None:
        """Save every process's state into a temporary folder, then publish it as the newest checkpoint."""
        acc, root = self.acc, self.folder.checkpoints
        name = f"{CHECKPOINT_PREFIX}{loop.step:09d}"
        tmp = root / f".tmp-{name}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        torch.save(rng_state(), tmp / f"rng-{acc.process_index}.pt")
        acc.wait_for_everyone()
        if acc.is_main_process:
            torch.save(self.loop_state(loop), tmp / LOOP_STATE)
            meta = {"step": loop.step, "seen": loop.seen, "digest": self.digest, "processes": acc.num_processes}
            write_json(tmp / CHECKPOINT_META, meta)
            final = root / name
            if final.exists():  # the same step saved by an earlier attempt: the same state
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, final)
            for old in root.iterdir():
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def loop_state(self, loop: Loop) -> dict:
        selection = loop.selection
        return {
            "step": loop.step,
            "seen": loop.seen,
            "elapsed": time.time() - loop.t0,
            "generator": self.gen.get_state() if self.gen is not None else None,
            "selection": {
                "best": dataclasses.asdict(selection.best) if selection.best else None,
                "oracle": dataclasses.asdict(selection.oracle) if selection.oracle else None,
            },
        }


def keep_only(weights: list[dict], names: set[str]) -> None:
    """accelerate's save hook: drop frozen parameters and buffers from the state dicts it saves."""
    for state in weights:
        for key in [k for k in state if k not in names]:
            del state[key]


def check_weights(source: Path, trainable: set[str]) -> None:
    """With `strict=False` a missing weight would load silently: check the file holds every trainable one."""
    path = source / "model.safetensors"
    if not path.is_file():
        return  # FSDP/DeepSpeed layouts, or a .bin: accelerate's own loading checks them
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        missing = trainable - set(f.keys())
    if missing:
        raise W2SError(f"{source}: the checkpoint lacks {len(missing)} trainable weights (e.g. {min(missing)})")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def selection_from(select: str, saved: dict) -> Selection:
    best, oracle = saved["best"], saved["oracle"]
    return Selection(select, Point(**best) if best else None, Point(**oracle) if oracle else None)
