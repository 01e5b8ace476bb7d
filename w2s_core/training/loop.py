"""One job, one process: read the job folder, train, write events, predictions and the result back.

`run` tells the whole story in order: job.json -> data and labels (less a validation slice) ->
model (or probe features) -> optimizer -> the loop -> the kept checkpoint's predictions -> outputs.
Evaluation and which checkpoint is kept (`[train] select`) live in `evaluate.py`; saving and resuming
training state (`checkpoint_every`, SIGTERM/SIGUSR1, exit 75) in `checkpoint.py`. The job folder's
files and event keys come from `w2s_core.jobdir`; result.json is written last, so its presence means
success. The same code runs on a CPU, one GPU, or several under DDP/FSDP from an accelerate config.

Labels and logits are [N, C]: C = 2 for binary and pairwise tasks, K for a K-class task, and for
chess the candidate count, which varies by example. Chess's training labels are padded with 0 to
the training split's widest candidate set, once, and each minibatch's rows are cut to its logits'
width (`evaluate.to_width`: only padding columns go, since no example of the minibatch has more
candidates than its logits have columns).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from w2s_core.data import make_splits, val_rows
from w2s_core.errors import W2SError
from w2s_core.jobdir import Event, EventWriter, JobDir
from w2s_core.training.batching import training_steps
from w2s_core.training.checkpoint import Checkpointer
from w2s_core.training.compiling import compile_model
from w2s_core.training.evaluate import (
    FINAL,
    Selection,
    class1,
    eval_point,
    forward,
    predictions,
    summarize,
    to_width,
)
from w2s_core.training.labels import training_labels
from w2s_core.training.lengths import align_upstream, drop_long_inputs, indexed
from w2s_core.training.losses import LossFn, TargetFn, make_batch_target, make_loss, soft_ce_rows
from w2s_core.training.models import to_device
from w2s_core.training.optimizers import make_optimizer
from w2s_core.training.precision import check_predictions, grad_scaler
from w2s_core.training.progress import StepFigures, flush, progress_event
from w2s_core.training.setup import Setup, build, n_classes
from w2s_core.training.size import model_size
from w2s_core.training.world import check_world, shard, shard_weight, step_shape


def run(job_dir: Path) -> None:
    """Train the job in `job_dir` and write its outputs there."""
    from w2s_core.training.generative import resolve_init  # the LM owner's module: it imports transformers

    folder = JobDir(job_dir)
    spec = folder.read_spec()
    acc = Accelerator()
    check_world(acc)
    # from here SIGTERM/SIGUSR1 stop the job at an optimiser step's end; a matching checkpoint resumes
    with Checkpointer.open(folder, spec, acc) as ckpt:
        train_job(folder, resolve_init(spec), acc, ckpt)  # a job after a generative stage starts from its model


def train_job(folder: JobDir, job: dict, acc: Accelerator, ckpt: Checkpointer) -> None:
    train = job["train"]
    acc.gradient_accumulation_steps = step_shape(train, acc.num_processes)[1]  # known once the group is
    set_seed(job["seed"])

    # inputs too long for any model of the recipe leave every split ([data] long_inputs = "drop")
    splits, dropped = drop_long_inputs(job, make_splits(job["data"], job["seed"]))
    upstream = align_upstream(read_upstream(job), splits, job)
    half = splits[job["train_split"]]
    labels = training_labels(job, half, upstream)
    held = val_rows(len(labels), train.get("val_size", 0), job["seed"], job["train_split"])

    setup = build(job, splits, acc.device)
    size = model_size(job, setup)  # before prepare: FSDP shards the parameters
    labels, val_labels = hold_out(setup, labels, held)
    classes = n_classes(job, splits)  # 2 for binary and pairwise tasks, K, or 0 for chess's candidates
    loss_fn = make_loss(job["loss"]["name"], job["loss"]["params"], classes)
    batch_target = make_batch_target(job["loss"]["name"], job["loss"]["params"], classes)
    module, opt = prepare(acc, setup, train)
    scaler = grad_scaler(acc, setup.precision)  # float16: loss scaling, fp32 master weights (precision.py)
    if scaler is not None:
        acc.register_for_checkpointing(scaler)  # its scale resumes with the model (checkpoint.py)

    loop = Loop(
        acc,
        setup,
        module,
        opt,
        loss_fn,
        batch_target,
        labels,
        job,
        splits["test"].labels,
        EventWriter(folder.events if acc.is_main_process else None),
        val_labels=val_labels,
        selection=Selection(train.get("select", FINAL)),
        n_classes=classes,
        checkpointer=ckpt,
        scaler=scaler,
    )
    ckpt.restore(loop)
    train_loop(loop)

    final = eval_point(loop, keep_predict=True)
    chosen = loop.selection.close(final)
    # every process has the gathered predictions: all fail together rather than record garbage as done
    named = {job["predict_split"] if k == "predict" else k: v for k, v in chosen.probs.items()}
    check_predictions(named, train, chosen.step)
    if acc.is_main_process:
        drop = set(held)
        trained = [y for i, y in enumerate(half.labels) if i not in drop]  # the true labels of what was trained on
        result = {**summarize(loop, chosen, final, trained, upstream), **dropped, **size}
        loop.events.emit({Event.STEP: loop.step, Event.KIND: Event.FINAL, **final.figures})
        loop.events.close()
        folder.write_outputs(environment(acc), indexed(predictions(chosen, loop, splits), splits), result)
    ckpt.finish()


# --- data and labels ------------------------------------------------------------------------


def read_upstream(job: dict) -> dict | None:
    """The weak supervisor's predictions for a transfer job; None for a ground-truth job."""
    return None if job["labels"] == "gt" else JobDir(Path(job["upstream_dir"])).read_predictions()


def hold_out(setup: Setup, labels: torch.Tensor, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(training labels, validation labels): the `rows` of the training half (`data.val_rows`) leave training.

    Their inputs move to `setup.inputs["val"]` and their labels, the job's own supervision, come back
    apart; without rows nothing changes and there are no validation labels.
    """
    if not rows:
        return labels, None
    inputs = setup.inputs["train"]
    if len(inputs) != len(labels):
        raise W2SError(
            f"the training half has {len(labels)} labels but {len(inputs)} inputs: "
            "cannot hold out its [train] val_size rows"
        )
    held = set(rows)
    fit = [i for i in range(len(labels)) if i not in held]
    setup.inputs["val"] = [inputs[i] for i in rows]
    setup.inputs["train"] = [inputs[i] for i in fit]
    if "train" in setup.widths:  # chess: each example's candidate count goes with it
        widths = setup.widths["train"]
        setup.widths["val"], setup.widths["train"] = [widths[i] for i in rows], [widths[i] for i in fit]
    return labels[fit], labels[rows]


# --- optimizer ------------------------------------------------------------------------------


def prepare(acc: Accelerator, setup: Setup, train: dict) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The accelerate-wrapped module in training mode, and its optimizer over the trainable parameters.

    Training mode is what switches Hugging Face's gradient checkpointing on (it checks
    `self.training`); dropout stays off because the backbone was loaded with it zeroed, unless
    `train_with_dropout` kept it (`w2s_core.training.models.load_backbone`).

    `[train] compile = true` compiles the model's blocks in place before accelerate wraps it
    (`compiling.compile_model`, which says how and what it costs).
    """
    setup.module.train()
    if train.get("compile"):
        compile_model(setup.module)
    module = acc.prepare(setup.module)
    # `[train] optimizer`, absent from job.json files written before it existed: Adam, as they trained
    trainable = [p for p in module.parameters() if p.requires_grad]
    opt = acc.prepare(
        make_optimizer(train.get("optimizer", "adam"), trainable, lr=train["lr"], weight_decay=train["weight_decay"])
    )
    return module, opt


def lr_factor(schedule: str, warmup: float, frac: float) -> float:
    if warmup and frac < warmup:
        return frac / warmup
    rest = (frac - warmup) / max(1e-12, 1 - warmup)
    return {"constant": 1.0, "linear": 1 - rest, "cosine": 0.5 * (1 + math.cos(math.pi * rest))}[schedule]


# --- the loop -------------------------------------------------------------------------------


@dataclass
class Loop:
    """What the training loop reads, and the counters it keeps."""

    acc: Accelerator
    setup: Setup
    module: torch.nn.Module  # the accelerate-prepared wrapper, so DDP/FSDP hooks run
    opt: torch.optim.Optimizer
    loss_fn: LossFn
    batch_target: TargetFn | None  # a batch-level loss's target function (see batch_targets); else None
    labels: torch.Tensor  # [N,C] soft labels of the examples trained on (the training split less the val slice)
    job: dict
    test_labels: list[int]
    events: EventWriter
    val_labels: torch.Tensor | None = None  # [V,C] the val slice's supervision labels; None without val_size
    selection: Selection = field(default_factory=Selection)  # the eval points: kept one and oracle
    seen: int = 0  # training examples consumed so far, across processes
    step: int = 0  # optimiser steps taken
    t0: float = field(default_factory=time.time)
    # (loss, train acc) of each minibatch since the last step, left on the device: read once per step
    window: list[torch.Tensor] = field(default_factory=list)
    pending: StepFigures | None = None  # the last step's figures, read one step late on a GPU (progress.py)
    lag: bool | None = None  # read each step's figures one step late: None = on a GPU (progress.lags)
    signalled: bool = False  # under DDP: some process got SIGTERM/SIGUSR1, as read with the figures
    n_classes: int = 2  # the task's classes: 2 (binary, pairwise), K, or 0 for per-example candidates (chess)
    checkpointer: Checkpointer | None = None  # saves at step ends and resumes (checkpoint.py); None: never
    scaler: torch.amp.GradScaler | None = None  # float16's loss scaler (precision.grad_scaler); None: unscaled


def train_loop(loop: Loop) -> None:
    """Optimiser step after step; each accumulates the gradients of `step_shape`'s minibatches (`batch_size` examples).

    Everything that depends on training progress (the learning rate, logconf's α) is taken at the
    step's start, `step_frac` = examples seen before the step / total, as the reference steps its
    schedule once per optimiser step; so no figure depends on how a step is cut into minibatches.
    """
    train, acc = loop.job["train"], loop.acc
    n = len(loop.setup.inputs["train"])
    total = max(1, math.ceil(n * train["epochs"]))
    gen = torch.Generator().manual_seed(loop.job["seed"])
    size = step_shape(train, acc.num_processes)[0]
    steps = training_steps(
        loop.setup.inputs["train"],
        size,
        acc.gradient_accumulation_steps,
        total,
        gen,
        group=bool(train.get("group_by_length")),  # opt-in: changes which examples share a step
        sort=loop.batch_target is None,  # logconf's hardening breaks exact ties by batch position
    )
    ckpt = loop.checkpointer
    for group in ckpt.begin(loop, steps, gen) if ckpt else steps:  # a resumed job skips the steps it took
        step_frac = loop.seen / total
        # a step of one minibatch fixes its target from its own gradient pass: no extra pass needed
        targets = batch_targets(loop, group, step_frac) if loop.batch_target and len(group) > 1 else None
        for k, chunk in enumerate(group):
            loop.window.append(train_minibatch(loop, group, k, step_frac, targets[k] if targets else None))
            loop.seen += len(chunk)
            if acc.sync_gradients:
                loop.step += 1
                emit(loop, progress_event(loop, n, step_frac))  # this step's line, or the one before (progress.py)
                if ckpt:  # saves when due; after SIGTERM/SIGUSR1 saves and exits 75; writes the step's line first
                    ckpt.after_step(loop, lambda: emit(loop, flush(loop, n)))
    emit(loop, flush(loop, n))  # the last step's line
    if ckpt:
        ckpt.end()


def emit(loop: Loop, events: list[dict]) -> None:
    for event in events:
        loop.events.emit(event)


def train_minibatch(
    loop: Loop, group: list[list[int]], k: int, step_frac: float, fixed: torch.Tensor | None
) -> torch.Tensor:
    """Forward, loss and backward on minibatch k of the step; the optimiser steps only when gradients sync.

    Returns [loss, train acc] on the device, so a minibatch waits for no copy to the host.
    """
    train, idx = loop.job["train"], shard(loop.acc, group[k])
    with loop.acc.accumulate(loop.module):
        logits = forward(loop.setup, loop.module, [loop.setup.inputs["train"][i] for i in idx])
        target = to_device(to_width(loop.labels[idx], logits.shape[1]), logits.device)
        if loop.batch_target is None:
            loss = logged = loop.loss_fn(logits, target, step_frac)
            weight = shard_weight(loop.acc, group[k])  # 1 for an even pass: the loss as it always was
            loss = loss if weight == 1 else loss * weight
        else:
            if fixed is None:
                fixed = batch_targets(loop, group, step_frac, [class1(logits.detach())])[0]
            loss, logged = batch_level_loss(loop, group, k, logits, fixed)
        loop.acc.backward(loop.scaler.scale(loss) if loop.scaler else loss)
        for param_group in loop.opt.param_groups:
            param_group["lr"] = train["lr"] * lr_factor(train["schedule"], train["lr_warmup_frac"], step_frac)
        if loop.scaler and loop.acc.sync_gradients:  # unscales, skips a step whose gradients overflowed
            loop.scaler.step(loop.opt)
            loop.scaler.update()
        else:
            loop.opt.step()  # accelerate's optimizer steps only when gradients sync
        loop.opt.zero_grad()
    hits = (logits.argmax(-1) == target.argmax(-1)).float().mean()
    return torch.stack([logged.detach(), hits])


# --- batch-level losses (logconf) -------------------------------------------------------------


def batch_targets(
    loop: Loop, group: list[list[int]], step_frac: float, probs: list[torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """A batch-level loss's target for the whole optimiser step, as each minibatch's rows on this process.

    We follow the reference (openai/weak-to-strong `train.py`), which stacks the logits of every
    minibatch of a batch and calls the loss once, so logconf's class share and hardening rank always
    see the whole batch (32 examples), whatever the minibatch. We reach the same targets without
    keeping every minibatch's graph alive: a no-grad forward pass over the batch's minibatches, with
    the parameters the gradient passes will use and dropout off (so the very same function), gives
    the student's class-1 probabilities; the target is fixed from them, and each minibatch's gradient
    pass then trains against its rows (`batch_level_loss`). Keeping the graphs instead would hold the
    whole batch's activations at once, which is exactly what minibatching avoids for large models;
    the no-grad pass costs one extra forward per step and only an inference minibatch's memory
    (`benchmarks/batch_loss.py`: about +40% training time at minibatch < batch on tiny CPU models,
    no change in peak memory).

    Where we differ, and why: (1) under DDP the share and rank come from the global batch (every
    process's probabilities are summed into one vector in batch order), so the result depends on
    neither the minibatch nor the number of processes; the reference runs a single process. (2) With
    one minibatch per step and process there is no extra pass: the gradient pass's own detached
    logits fix the target, exactly as the reference. (3) With `train_with_dropout` the no-grad pass
    draws its own dropout masks, so the rank comes from another dropout sample than the gradients.
    (4) The hard labels mark exactly round(share·N) examples by a stable sort (`hard_labels`) where
    the reference thresholds at a quantile, which over- or under-shoots with ties.
    `probs`, when given, are this process's class-1 probabilities per minibatch (skipping the pass).

    Two-way tasks only: beyond two ways (K classes, chess) logconf hardens to each example's own
    argmax, which does not depend on the batch, so `make_batch_target` gives None there and every
    minibatch takes its loss on its own logits (the same target whatever the minibatch or process count).
    """
    acc = loop.acc
    if probs is None:
        probs = no_grad_probs(loop, group)
    rows, offset = [], 0
    merged = torch.zeros(sum(len(c) for c in group), device=acc.device)
    for chunk, p in zip(group, probs):
        mine = torch.arange(offset + acc.process_index, offset + len(chunk), acc.num_processes)
        merged[mine.to(acc.device)] = p[: len(mine)].to(merged)  # a repeated row (empty shard) is left out
        rows.append(mine if len(mine) else torch.tensor([offset]))
        offset += len(chunk)
    if acc.num_processes > 1:
        merged = acc.reduce(merged, reduction="sum")  # positions are disjoint: a sum assembles the batch
    weak = loop.labels[[i for chunk in group for i in chunk]].to(acc.device)
    target = loop.batch_target(merged, weak, step_frac)
    return [target[r.to(acc.device)] for r in rows]


@torch.no_grad()
def no_grad_probs(loop: Loop, group: list[list[int]]) -> list[torch.Tensor]:
    """This process's class-1 probabilities for every minibatch of the step, in training mode without a graph."""
    inputs = loop.setup.inputs["train"]
    return [class1(forward(loop.setup, loop.module, [inputs[i] for i in shard(loop.acc, chunk)])) for chunk in group]


def batch_level_loss(
    loop: Loop, group: list[list[int]], k: int, logits: torch.Tensor, fixed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backward, mean loss to log) of minibatch k against its rows of the fixed batch target.

    Weighted so that, after accelerate divides by the accumulation steps and DDP averages over
    processes, the step's gradient is the mean over the batch's examples even when minibatches
    differ in size; a repeated row (a process with an empty shard) weighs 0.
    """
    acc = loop.acc
    ce = soft_ce_rows(logits, fixed)
    real = len(group[k][acc.process_index :: acc.num_processes])
    scale = acc.num_processes * acc.gradient_accumulation_steps
    size = sum(len(c) for c in group)
    loss = ce.mean() if real * scale == size else ce[:real].sum() * (scale / size)
    return loss, ce.mean()


# --- outputs --------------------------------------------------------------------------------


def environment(acc: Accelerator) -> dict:
    """env.json: where the job ran."""
    return {
        "device": str(acc.device),
        "num_processes": acc.num_processes,
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "distributed_type": str(acc.distributed_type),
        "torch": torch.__version__,
    }
