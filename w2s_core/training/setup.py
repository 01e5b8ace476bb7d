"""What a job trains: a classifier over token ids (finetune) or a linear head over frozen features (probe).

`build` turns a job's model and train settings into a `Setup`: the module, how to batch its
inputs, and the inputs of every split the job reads. The loop (`w2s_core.training.loop`) only
ever sees a Setup, so it runs the same way for both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from w2s_core.training.features import cached_features
from w2s_core.training.lengths import truncation_side
from w2s_core.training.models import collate, encode, load_classifier, pick_dtype


@dataclass
class Setup:
    """What the loop needs: the module to train, how to batch its inputs, the inputs per split."""

    module: torch.nn.Module
    batch: Callable[[list], tuple]  # items -> positional args of module
    inputs: dict[str, list]  # "train" / "test" / "predict" -> token ids or frozen features
    device: torch.device
    autocast: bool = False


def split_texts(job: dict, splits: dict) -> dict[str, list[str]]:
    """The texts the job reads: its training split, the test set and, if it labels one, its predict split."""
    texts = {"train": splits[job["train_split"]].texts, "test": splits["test"].texts}
    if job["predict_split"]:
        texts["predict"] = splits[job["predict_split"]].texts
    return texts


def build(job: dict, splits: dict, device: torch.device) -> Setup:
    texts = split_texts(job, splits)
    if job["train"]["mode"] == "probe":
        return build_probe(job, splits, texts, device)
    return build_finetune(job, texts, device)


def build_probe(job: dict, splits: dict, texts: dict[str, list[str]], device: torch.device) -> Setup:
    """A zero-initialised linear head over the backbone's cached pooled features."""
    spec, train = job["model"], job["train"]
    # one cache entry per model for all of A, B and test: every job (and, with a fixed train
    # pool, every seed) on this model loads it instead of running the backbone again
    pool = sorted({t for split in ("A", "B", "test") for t in splits[split].texts})
    table = cached_features(
        spec,
        pool,
        max_length=train["max_length"],
        side=truncation_side(job),
        batch_size=max(train["minibatch_size"], 32),
        device=device,
    )
    row = {t: i for i, t in enumerate(pool)}
    feats = {n: table[[row[x] for x in t]] for n, t in texts.items()}
    head = torch.nn.Linear(table.shape[1], 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return Setup(head, lambda items: (torch.stack(items).to(device),), {n: list(f) for n, f in feats.items()}, device)


def build_finetune(job: dict, texts: dict[str, list[str]], device: torch.device) -> Setup:
    """The backbone with a zero-initialised head; inputs are token ids, padded per minibatch."""
    spec, train = job["model"], job["train"]
    lora = train["lora"] if isinstance(train["lora"], dict) else ({} if train["lora"] else None)
    dtype = pick_dtype(train.get("dtype", "auto"), device)
    # "auto" bf16 on a full finetune keeps float32 master weights and autocasts the compute: Adam
    # updates on bf16 weights round away at lr 1e-5. LoRA or an explicit dtype loads weights in it.
    autocast = dtype == torch.bfloat16 and train.get("dtype", "auto") == "auto" and lora is None
    weights = torch.float32 if autocast else dtype
    model, tok = load_classifier(
        spec,
        dtype=weights,
        lora=lora,
        grad_checkpointing=bool(train.get("grad_checkpointing")),
        dropout=bool(train.get("train_with_dropout")),
    )

    def batch(items):
        ids, mask = collate(items, tok.pad_token_id)
        return ids.to(device), mask.to(device)

    side = truncation_side(job)  # [data] long_inputs: which end of a too-long input is cut
    return Setup(
        model, batch, {n: encode(tok, t, train["max_length"], side) for n, t in texts.items()}, device, autocast
    )
