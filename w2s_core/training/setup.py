"""What a job trains: a classifier over token ids (finetune) or a linear head over frozen features (probe).

`build` turns a job's model, train settings and data kind (`[data] kind`) into a `Setup`: the
module, how to batch its inputs, and the inputs of every split the job reads. The loop
(`w2s_core.training.loop`) only ever sees a Setup and [N, C] logits, so it runs the same way for
every mode and kind:

- classify: a K-way head (K = the data's `n_classes`, 2 for binary tasks), zero-initialised.
- pairwise: a reward model. One scalar head r(·) reads `pair_text(prompt, reply)` for each of the
  two replies and the logits are (r(choice 0), r(choice 1)), so the softmax is σ(Δr) and
  cross-entropy against the preferred reply is the Bradley–Terry loss; a weak reward model's
  labels are its σ(Δr) as soft two-way labels. This follows the paper's reward-modelling setting
  (Burns et al. 2023, §4.1: a scalar head on the prompt and one completion, trained on comparisons
  by the usual pairwise loss, weak labels as soft preferences). The reference code
  (openai/weak-to-strong) trains no reward models: its `anthropic_hh` is one reply classified as
  chosen or rejected. In probe mode the head is a linear scalar on each reply's frozen features,
  i.e. a linear probe on the difference of the two replies' features (r1 − r0 = w·(f1 − f0)).
- chess: a causal LM scoring every legal move (`w2s_core.training.choice.build_choice`);
  finetune only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from w2s_core.errors import InputError, W2SError
from w2s_core.training.features import cached_features
from w2s_core.training.lengths import truncation_side
from w2s_core.training.models import PairScores, collate, encode, load_classifier, pick_dtype, to_device, unpadded
from w2s_core.training.precision import Precision, job_precision


@dataclass
class Setup:
    """What the loop needs: the module to train, how to batch its inputs, the inputs per split."""

    module: torch.nn.Module
    batch: Callable[[list], tuple]  # items -> positional args of module
    inputs: dict[str, list]  # "train" / "test" / "predict" (/ "val") -> token ids, frozen features or items
    device: torch.device
    precision: Precision = field(default_factory=Precision)  # weights' dtype, autocast, loss scaling
    # per-example candidate counts per input name, where they differ between examples (chess);
    # empty when every example has the same classes. `build` fills it, `loop.hold_out` splits it.
    widths: dict[str, list[int]] = field(default_factory=dict)

    @property
    def autocast(self) -> torch.dtype | None:
        """The dtype the forward pass autocasts to; None for none."""
        return self.precision.autocast


def data_kind(job: dict) -> str:
    """`[data] kind`: "classify" (left out of job specs at its default), "pairwise" or "chess"."""
    return job["data"].get("kind", "classify")


def n_classes(job: dict, splits: dict) -> int:
    """The task's classes: K for classify, 2 for pairwise, 0 for per-example candidate sets (chess)."""
    return splits[job["train_split"]].n_classes


def split_names(job: dict) -> dict[str, str]:
    """Input name -> the split it reads: the training split, the test set and, if it labels one, the predict split."""
    names = {"train": job["train_split"], "test": "test"}
    if job["predict_split"]:
        names["predict"] = job["predict_split"]
    return names


def split_texts(job: dict, splits: dict) -> dict[str, list[str]]:
    """The texts the job reads: its training split, the test set and, if it labels one, its predict split."""
    return {name: splits[split].texts for name, split in split_names(job).items()}


def build(job: dict, splits: dict, device: torch.device) -> Setup:
    kind, probe = data_kind(job), job["train"]["mode"] == "probe"
    if kind == "chess":
        if probe:
            raise InputError(
                '[train] mode = "probe" cannot train on [data] kind = "chess": a chess move is scored by the '
                "causal LM's own next-token probabilities of the move, which a linear head on frozen pooled "
                'features does not have. Set mode = "finetune" for this task.'
            )
        from w2s_core.training.choice import build_choice  # the LM owner's module; torch-heavy, chess only

        setup = build_choice(job, splits, device)
        setup.widths = {name: [len(c) for c in splits[s].choices] for name, s in split_names(job).items()}
        return setup
    if kind == "pairwise":
        pairs = {name: pair_texts(splits[s], s) for name, s in split_names(job).items()}
        return build_pairwise_probe(job, splits, pairs, device) if probe else build_pairwise(job, pairs, device)
    k = n_classes(job, splits)
    if k < 2:
        raise W2SError(f"split {job['train_split']} has {k} classes; a classify task needs at least 2.")
    texts = split_texts(job, splits)
    return build_probe(job, splits, texts, device, k) if probe else build_finetune(job, texts, device, k)


# --- classify -------------------------------------------------------------------------------


def probe_features(job: dict, pool: list[str], device: torch.device) -> tuple[torch.Tensor, dict[str, int]]:
    """The frozen backbone's features of every text in `pool` (cached on disk) and each text's row.

    Extracted in the job's compute dtype (`[train] dtype`; "auto": bf16 on a GPU that has it, float32
    on a CPU), in passes of a token budget (`features.token_batches`).
    """
    train = job["train"]
    table = cached_features(
        job["model"],
        pool,
        max_length=train["max_length"],
        side=truncation_side(job),
        batch_size=max(train["minibatch_size"], 32),
        device=device,
        dtype=pick_dtype(train.get("dtype", "auto"), device),
    )
    return table, {t: i for i, t in enumerate(pool)}


def build_probe(job: dict, splits: dict, texts: dict[str, list[str]], device: torch.device, k: int = 2) -> Setup:
    """A zero-initialised linear head (K outputs) over the backbone's cached pooled features."""
    # one cache entry per model for all of A, B and test: every job (and, with a fixed train
    # pool, every seed) on this model loads it instead of running the backbone again
    pool = sorted({t for split in ("A", "B", "test") for t in splits[split].texts})
    table, row = probe_features(job, pool, device)
    feats = {n: table[[row[x] for x in t]] for n, t in texts.items()}
    head = torch.nn.Linear(table.shape[1], k)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return Setup(head, lambda items: (torch.stack(items).to(device),), {n: list(f) for n, f in feats.items()}, device)


def load_finetune(job: dict, device: torch.device, n_outputs: int):
    """(model with `n_outputs` head logits, tokenizer, Precision) for a finetune job.

    The weights' dtype and the autocast come from `[train] dtype` (`precision.job_precision`): "auto"
    bf16 on a full finetune keeps float32 master weights and autocasts the compute (Adam updates on bf16
    weights round away at lr 1e-5); float16 keeps float32 master weights, autocasts and scales the loss.
    """
    spec, train = job["model"], job["train"]
    lora = train["lora"] if isinstance(train["lora"], dict) else ({} if train["lora"] else None)
    precision = job_precision(train, device, lora is not None)
    model, tok = load_classifier(
        spec,
        dtype=precision.weights,
        lora=lora,
        grad_checkpointing=bool(train.get("grad_checkpointing")),
        dropout=bool(train.get("train_with_dropout")),
        n_outputs=n_outputs,
        device=device,
    )
    return model, tok, precision


def build_finetune(job: dict, texts: dict[str, list[str]], device: torch.device, k: int = 2) -> Setup:
    """The backbone with a zero-initialised K-way head; inputs are token ids, padded per minibatch."""
    model, tok, precision = load_finetune(job, device, k)

    def batch(items):
        ids, mask = collate(items, tok.pad_token_id)
        # no padding, no mask: the backbone then need not check the mask on the host (models docstring)
        return to_device(ids, device), None if unpadded(items) else to_device(mask, device)

    side = truncation_side(job)  # [data] long_inputs: which end of a too-long input is cut
    max_length = job["train"]["max_length"]
    return Setup(model, batch, {n: encode(tok, t, max_length, side) for n, t in texts.items()}, device, precision)


# --- pairwise -------------------------------------------------------------------------------


def pair_texts(split, name: str) -> list[tuple[str, str]]:
    """(text of choice 0, text of choice 1) per example: `pair_text(prompt, reply)`, what the reward model reads."""
    from w2s_core.data import pair_text

    choices = split.choices
    if choices is None or any(len(c) != 2 for c in choices):
        raise W2SError(f'split {name} of a [data] kind = "pairwise" task must hold exactly two replies per example.')
    return [(pair_text(p, c[0]), pair_text(p, c[1])) for p, c in zip(split.texts, choices)]


def build_pairwise(job: dict, pairs: dict[str, list[tuple[str, str]]], device: torch.device) -> Setup:
    """A reward model: the backbone with a zero-initialised scalar head, scoring both replies in one pass."""
    model, tok, precision = load_finetune(job, device, 1)
    side, max_length = truncation_side(job), job["train"]["max_length"]
    inputs = {}
    for name, rows in pairs.items():
        first = encode(tok, [a for a, _ in rows], max_length, side)
        second = encode(tok, [b for _, b in rows], max_length, side)
        inputs[name] = list(zip(first, second))

    def batch(items):
        seqs = [a for a, _ in items] + [b for _, b in items]
        ids, mask = collate(seqs, tok.pad_token_id)
        return to_device(ids, device), None if unpadded(seqs) else to_device(mask, device)

    return Setup(PairScores(model), batch, inputs, device, precision)


def build_pairwise_probe(
    job: dict, splits: dict, pairs: dict[str, list[tuple[str, str]]], device: torch.device
) -> Setup:
    """A linear scalar reward on each reply's cached frozen features: a linear probe on feature differences.

    Bias-free, since a bias cancels in r1 − r0; zero-initialised, so training starts at σ(0) = 1/2.
    """
    every = [t for s in ("A", "B", "test") for pair in pair_texts(splits[s], s) for t in pair]
    table, row = probe_features(job, sorted(set(every)), device)
    inputs = {name: [(table[row[a]], table[row[b]]) for a, b in rows] for name, rows in pairs.items()}
    head = torch.nn.Linear(table.shape[1], 1, bias=False)
    torch.nn.init.zeros_(head.weight)

    def batch(items):
        return (torch.stack([a for a, _ in items] + [b for _, b in items]).to(device),)

    return Setup(PairScores(head), batch, inputs, device)
