"""A training job's numerics: the dtype its weights load in, the dtype its compute autocasts to, loss
scaling for float16, and the guard that fails a job whose loss or predictions stop being numbers.

`[train] dtype` (`job_precision`):
- "float32": weights and compute in float32.
- "auto": float32 on a CPU; bfloat16 on a GPU that has it: a full finetune keeps float32 master weights
  and autocasts the compute (Adam updates of bf16 weights round away at lr 1e-5), LoRA loads the frozen
  weights in bf16 (peft keeps its adapters in float32).
- "bfloat16": the weights in bf16, no autocast (the user asked for bf16 weights).
- "float16": float32 master weights (LoRA: frozen fp16 weights, float32 adapters), compute autocast to
  float16, and the loss scaled by `torch.amp.GradScaler` so small gradients do not flush to zero; a step
  whose scaled gradients overflow is skipped and the scale lowered. Before issue 14 float16 loaded the
  weights in fp16 and ran Adam on them unscaled: the loss went NaN on a CPU and the NaN predictions were
  recorded as done. float16's largest value is 65504, so activations can still overflow: bfloat16 has
  float32's range and is the better choice on every GPU that has it (A100, H100 and later).

The classification head always runs outside autocast, in float32 (`models.BinaryClassifier`), so
probabilities, soft labels and AUROC keep their resolution.

The guard (`check_loss`, `check_predictions`): a job whose loss at any optimiser step, or any of its
predictions, is NaN or infinite fails with a W2SError naming the step (and the split), so the
supervisor records it failed and skips its dependents instead of handing garbage soft labels on.
The loss is looked at once per optimiser step, when the loop copies the step's losses to the host
anyway (no extra device sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from w2s_core.errors import W2SError
from w2s_core.training.models import pick_dtype


@dataclass(frozen=True)
class Precision:
    """How a job computes: `weights` the dtype its parameters load in, `autocast` the compute dtype (None: none)."""

    weights: torch.dtype = torch.float32
    autocast: torch.dtype | None = None

    @property
    def scaled(self) -> bool:
        """Whether the loss is scaled (float16 compute: its gradients underflow without it)."""
        return self.autocast == torch.float16


def job_precision(train: dict, device: torch.device | str, lora: bool) -> Precision:
    """The Precision of a job's `[train] dtype` on `device` (module docstring)."""
    requested = train.get("dtype", "auto")
    dtype = pick_dtype(requested, device)
    if dtype == torch.float16:
        return Precision(torch.float16 if lora else torch.float32, torch.float16)
    if dtype == torch.bfloat16 and requested == "auto" and not lora:
        return Precision(torch.float32, torch.bfloat16)
    return Precision(dtype, None)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast to `dtype` on `device`'s type; a disabled one when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(acc, precision: Precision):
    """The loss scaler of a float16 job (None otherwise): sharded under FSDP, where each process holds
    only its shard's gradients and the overflow check must agree across processes."""
    if not precision.scaled:
        return None
    if acc.distributed_type.value == "FSDP":
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(acc.device.type)
    return torch.amp.GradScaler(acc.device.type)


# --- the guard ------------------------------------------------------------------------------------


def advice(train: dict) -> str:
    """What to try when a job diverged: bfloat16 instead of float16, and a lower lr."""
    lr = f" (it is {train['lr']:g})" if isinstance(train.get("lr"), (int, float)) else ""
    if train.get("dtype") == "float16":
        return (
            'float16 overflows above 65504: use dtype = "bfloat16" (on a GPU that has it) or "float32", '
            f"or lower lr{lr}."
        )
    return f"Lower lr{lr}."


def check_loss(losses: list[float], step: int, train: dict) -> None:
    """Fail the job if any minibatch loss of optimiser step `step` is NaN or infinite."""
    bad = [v for v in losses if not math.isfinite(v)]
    if bad:
        raise W2SError(
            f"training diverged: the loss was {bad[0]} at optimiser step {step}, so the model's predictions "
            f"would be garbage. {advice(train)}"
        )


def check_predictions(probs: dict, train: dict, step: int | None = None) -> None:
    """Fail the job if any prediction of a split (P(class 1), or a distribution per example) is not finite.

    `probs`: split name -> its predictions (a tensor, or lists, ragged for chess); `step`: the optimiser
    step they were taken at (None: a job that does not train, a prompt job).
    """
    for split, rows in probs.items():
        if isinstance(rows, torch.Tensor):
            bad = int((~torch.isfinite(rows)).sum())
        else:
            bad = sum(1 for row in rows for v in (row if isinstance(row, list) else [row]) if not math.isfinite(v))
        if not bad:
            continue
        if step is None:
            what, fix = "", 'Use dtype = "bfloat16" (on a GPU that has it) or "float32": float16 overflows above 65504.'
        else:
            what, fix = f" (at optimiser step {step})", advice(train)
        raise W2SError(
            f"non-finite predictions: {bad} of the predictions on split {split}{what} are NaN or infinite. {fix}"
        )
