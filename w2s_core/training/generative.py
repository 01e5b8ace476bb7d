"""Generative finetuning (`"stage": "generative"`): next-token training on unlabelled task text, before W2S training.

The paper finetunes its reward models as language models on the RM data's text, labels left out,
before weak-to-strong training, and applies the same stage to the strong students and to the
ceilings alike so the comparison stays fair; it raised PGR in that setting (with early stopping,
to about 30-40%). Here the stage is one job per model: it trains the causal LM with the mean
next-token cross-entropy per token and saves the checkpoint with its tokenizer in
`<job_dir>/model`; every downstream GT, transfer and bootstrap job of that model starts from it
(`resolve_init`, which the training loop calls first).

What it reads (`job["generative"]["text"]`):
- "task": the unlabelled inputs of halves A and B (never the test set), as the jobs downstream
  read them: classify, the texts; pairwise, `pair_text(prompt, reply)` for both replies; chess,
  the position prompts. Long inputs are left out as downstream (`[data] long_inputs = "drop"`,
  when the job names a length filter).
- {"path", "sha256"}: a local UTF-8 text file, one training text per paragraph (split on blank
  lines); the digest, taken when the recipe was planned, must still match.

Where we differ, or choose what the paper does not say: each text is its own sequence, truncated
on the right to max_length (not packed into blocks), so every sequence starts as the downstream
inputs do (with the tokenizer's BOS) and no text attends across another's end; padding costs no
compute beyond the minibatch's longest text. The loss of an optimiser step is the mean over all
the tokens of its batch (summed per minibatch and divided by the batch's token count), so it does
not depend on minibatch size or process count. Optimiser and weight decay as `[train]`
(`optimizer`, `weight_decay`), lr and epochs from the stage, the `[train]` schedule and warm-up.
LoRA adapters are merged into the weights before saving. Sharded (FSDP) training is not supported
by this stage. result.json reports the loss over all the training texts before and after
(`initial_lm_loss`, `lm_loss`): one extra forward pass over them each.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from w2s_core.data import make_splits, pair_text
from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import Event, EventWriter, JobDir, Result, read_json, write_json
from w2s_core.training.batching import minibatches
from w2s_core.training.choice import collate_choices, require_causal, trainable_choice_lm
from w2s_core.training.lengths import drop_long_inputs
from w2s_core.training.loop import environment, lr_factor
from w2s_core.training.models import _load_config, encode, load_tokenizer
from w2s_core.training.optimizers import make_optimizer
from w2s_core.training.precision import Precision, autocast, check_loss, grad_scaler

Item = tuple[list[int], list[list[int]]]


def resolve_init(job: dict) -> dict:
    """The job with its model loading from the generative stage's checkpoint when it has an `init_dir`.

    The model keeps its `name` (for messages), `arch` and `trust_remote_code` (a remote-code model's
    saved folder carries its code); its path becomes `<init_dir>/model`, with no revision and no
    tiny settings. A job without `init_dir` comes back unchanged.
    """
    init_dir = job.get("init_dir")
    if not init_dir:
        return job
    folder = JobDir(Path(init_dir))
    if not (folder.model / "config.json").is_file():
        raise W2SError(
            f"Model '{job['model'].get('name', job['model']['path'])}' starts from a generative stage, but "
            f"{folder.model} holds no saved model: the generative job in {init_dir} has not finished. "
            "Run it (`w2s run` runs upstream jobs first) before this job."
        )
    return {**job, "model": {**job["model"], "path": str(folder.model), "revision": None, "tiny": None}}


def run(job_dir: Path) -> None:
    """Finetune the model of the generative job in `job_dir` on its text and save it to `<job_dir>/model`."""
    folder = JobDir(job_dir)
    job = folder.read_spec()
    spec, train, gen = job["model"], job["train"], job["generative"]
    try:
        require_causal(spec, "generative finetuning")
    except InputError as exc:
        raise W2SError(str(exc)) from None
    acc = Accelerator()
    if acc.distributed_type.value == "FSDP":
        raise W2SError("the generative stage does not support sharded (FSDP) training: launch it on DDP or one device")
    set_seed(job["seed"])
    tok = load_tokenizer(spec)
    texts = training_texts(job)
    items = lm_items(encode(tok, texts, train["max_length"]))
    if not items:
        raise InputError("generative finetuning found no text of two tokens or more to train on")
    module, lm, precision = build(job, acc)
    opt = make_optimizer(
        train.get("optimizer", "adam"),
        [p for p in module.parameters() if p.requires_grad],
        lr=gen["lr"],
        weight_decay=train["weight_decay"],
    )
    module, opt = acc.prepare(module, opt)
    ctx = Context(acc, module, tok.pad_token_id, precision, train["minibatch_size"])
    initial = mean_loss(ctx, items)
    t0 = time.time()
    events = EventWriter(folder.events if acc.is_main_process else None)
    steps = train_steps(ctx, opt, items, job, events)
    seconds = time.time() - t0
    final = mean_loss(ctx, items)
    events.emit({Event.STEP: steps, Event.KIND: Event.FINAL, Event.LOSS: final})
    events.close()
    save(acc, module, lm, spec, folder.model, tok, bool(train["lora"]))
    if acc.is_main_process:
        result = {
            Result.LM_LOSS: final,
            Result.INITIAL_LM_LOSS: initial,
            Result.STEPS: steps,
            Result.TRAIN_SECONDS: seconds,
            Result.N_TEXTS: len(items),
            Result.N_TOKENS: sum(len(cands[0]) for _, cands in items),
        }
        folder.write_outputs(environment(acc), {}, result)


# --- the text -------------------------------------------------------------------------------


def training_texts(job: dict) -> list[str]:
    """The texts the stage trains on: the task's unlabelled halves A and B, or the paragraphs of a file."""
    source = job["generative"]["text"]
    if source == "task":
        return task_texts(job)
    if isinstance(source, dict) and "path" in source:
        return file_texts(Path(source["path"]), source.get("sha256"))
    raise InputError(f'[[generative]] text must be "task" or {{path = "..."}}, got {source!r}')


def task_texts(job: dict) -> list[str]:
    """Inputs of halves A and B (never test), as the downstream jobs read them."""
    splits = make_splits(job["data"], job["seed"])
    if job.get("length_filter"):
        splits, _ = drop_long_inputs({**job, "train_split": "A"}, splits)
    kind = job["data"].get("kind", "classify")
    texts: list[str] = []
    for name in ("A", "B"):
        split = splits[name]
        if kind == "pairwise":
            texts += [
                pair_text(prompt, reply) for prompt, replies in zip(split.texts, split.choices) for reply in replies
            ]
        else:  # classify: the inputs; chess: the position prompts
            texts += list(split.texts)
    return texts


def file_texts(path: Path, sha256: str | None) -> list[str]:
    """The non-blank paragraphs of a UTF-8 text file, checked against the digest the plan recorded."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"[[generative]] text: cannot read {path}: {e.strerror or e}") from e
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise InputError(
            f"[[generative]] text: {path} changed since the recipe was planned (its sha256 differs). "
            "Run `w2s run` again so the plan hashes the file's new content."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"[[generative]] text: {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def lm_items(ids: list[list[int]]) -> list[Item]:
    """A text as a ChoiceLM item: its first token is the context, the rest the one candidate, so the
    candidate's log-probability is the text's next-token log-likelihood. One-token texts predict nothing."""
    return [(seq[:1], [seq[1:]]) for seq in ids if len(seq) > 1]


# --- the model and the loop -----------------------------------------------------------------


class Context:
    """What a forward pass needs: the accelerator, the prepared module, the pad id, autocast, the minibatch."""

    def __init__(self, acc: Accelerator, module, pad_id: int, precision: Precision, minibatch: int):
        self.acc, self.module, self.pad_id, self.minibatch = acc, module, pad_id, minibatch
        self.precision = precision
        self.scaler = grad_scaler(acc, precision)  # float16 only: scales the loss, skips overflowing steps

    def logp(self, items: list[Item]) -> torch.Tensor:
        """Each item's summed next-token log-likelihood [n] (float32)."""
        args = [t.to(self.acc.device) for t in collate_choices(items, self.pad_id)]
        with autocast(self.acc.device, self.precision.autocast):
            return self.module(*args)[:, 0].float()


def build(job: dict, acc: Accelerator):
    """(ChoiceLM over the LM in training mode, the LM to save, Precision), dtypes as `setup.build_finetune`."""
    module, lm, precision = trainable_choice_lm(job, acc.device)
    module.train()
    return module, lm, precision


@torch.no_grad()
def mean_loss(ctx: Context, items: list[Item]) -> float:
    """The mean next-token loss per token over `items`, in eval mode, summed across processes."""
    acc = ctx.acc
    ctx.module.eval()
    total = torch.zeros(2, dtype=torch.float64, device=acc.device)  # (-log-likelihood, tokens)
    mine = items[acc.process_index :: acc.num_processes]
    for start in range(0, len(mine), ctx.minibatch):
        chunk = mine[start : start + ctx.minibatch]
        total[0] -= ctx.logp(chunk).sum().double()
        total[1] += sum(len(cands[0]) for _, cands in chunk)
    ctx.module.train()
    if acc.num_processes > 1:
        total = acc.reduce(total, reduction="sum")
    return (total[0] / total[1].clamp(min=1)).item()


def train_steps(ctx: Context, opt, items: list[Item], job: dict, events: EventWriter) -> int:
    """Optimiser steps over `epochs` passes of the items, in seeded order; one event per step. Returns the steps."""
    train, gen = job["train"], job["generative"]
    n = len(items)
    total = max(1, math.ceil(n * float(gen["epochs"])))
    gen_order = torch.Generator().manual_seed(job["seed"])
    step, seen, t0 = 0, 0, time.time()
    advised = {**train, "lr": gen["lr"]}  # what a diverged step's advice names: the stage's own lr
    for chunk in minibatches(n, train["batch_size"], total, gen_order):
        frac = seen / total
        lr = gen["lr"] * lr_factor(train["schedule"], train["lr_warmup_frac"], frac)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = step_gradients(ctx, [items[i] for i in chunk])
        if ctx.scaler:
            ctx.scaler.step(opt)
            ctx.scaler.update()
        else:
            opt.step()
        opt.zero_grad()
        step, seen = step + 1, seen + len(chunk)
        check_loss([loss], step, advised)  # summed over processes: all stop together
        events.emit(
            {
                Event.STEP: step,
                Event.EXAMPLES: seen,
                Event.EPOCH: seen / n,
                Event.LOSS: loss,
                Event.LR: lr,
                Event.EXAMPLES_PER_S: seen / max(time.time() - t0, 1e-9),
            }
        )
    return step


def step_gradients(ctx: Context, batch: list[Item]) -> float:
    """Accumulate the gradient of the batch's mean token loss; returns that loss.

    Each process takes every num_processes-th item and runs it in minibatches; a minibatch's summed
    loss is divided by the batch's token count (times the process count, which DDP's averaging
    undoes), and gradients sync only on a process's last minibatch. A process with no item runs one
    with weight 0, so every process takes part in the sync.
    """
    acc = ctx.acc
    tokens = sum(len(cands[0]) for _, cands in batch)
    mine = batch[acc.process_index :: acc.num_processes]
    weight = 1.0 if mine else 0.0
    mine = mine or batch[:1]
    pieces = [mine[s : s + ctx.minibatch] for s in range(0, len(mine), ctx.minibatch)]
    nll = torch.zeros((), device=acc.device)
    for k, piece in enumerate(pieces):
        sync = k == len(pieces) - 1
        with nullcontext() if sync else acc.no_sync(ctx.module):
            piece_nll = -ctx.logp(piece).sum()
            scaled = piece_nll * (weight * acc.num_processes / tokens)
            acc.backward(ctx.scaler.scale(scaled) if ctx.scaler else scaled)
        nll += piece_nll.detach() * weight
    if acc.num_processes > 1:
        nll = acc.reduce(nll, reduction="sum")
    return nll.item() / tokens


# --- saving ---------------------------------------------------------------------------------


def save(acc: Accelerator, module, lm, spec: dict, dest: Path, tok, lora: bool) -> None:
    """`save_pretrained` the trained LM (LoRA merged) and its tokenizer into `dest`, with the config's
    original dropout and cache settings (training zeroed them; a downstream job decides its own).

    config.json also gets `w2s_weights_sha256`, the digest of the saved weight files: a local model's
    fingerprint (`spec.models.model_fingerprint`: config.json's digest and the weight files' sizes)
    keys the probe-feature cache, and a rerun of the stage writes same-sized weights to the same
    folder, so without it a downstream probe could read the features of the previous weights.
    """
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    if lora:
        scorer = acc.unwrap_model(module)
        scorer.body = scorer.body.merge_and_unload()  # merges into the LM's own body modules
    original = _load_config(spec).to_dict()
    for key, value in original.items():
        if ("dropout" in key or "pdrop" in key or key == "use_cache") and hasattr(lm.config, key):
            setattr(lm.config, key, value)
    lm.save_pretrained(dest)
    tok.save_pretrained(dest)
    digest = hashlib.sha256()
    for weights in sorted(dest.iterdir()):
        if weights.suffix in (".safetensors", ".bin"):
            with open(weights, "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    digest.update(block)
    config = read_json(dest / "config.json")
    write_json(dest / "config.json", {**config, "w2s_weights_sha256": digest.hexdigest()}, indent=2)
