"""The optimizer a job trains with: `[train] optimizer = "adam" | "adamw" | "adafactor"`.

The names are checked in `w2s_core.spec.recipe` (OPTIMIZERS); each is built here.

- "adam" (default, and what every job before the option trained with): `torch.optim.Adam` with
  `weight_decay` as Adam's coupled L2 term (added to the gradient, so Adam rescales it).
- "adamw": `torch.optim.AdamW`, decoupled weight decay (the weights shrink by lr·weight_decay each
  step, outside Adam's rescaling; EleutherAI/w2s trains with it through the HF Trainer). Both take
  the recipe's `weight_decay` (default 0, where the two are the same optimizer).
- "adafactor": what openai/weak-to-strong uses for its largest model (Qwen-72B, "save space by
  using adafactor"): `torch_optimizer.Adafactor(model.parameters(), lr=lr)` (torch_optimizer ~0.3).
  That class defaults to `relative_step=True`, which *ignores the given lr*: each step moves a
  weight matrix by min(1e-2, 1/sqrt(step)) times the larger of 1e-3 and its own RMS, on an update
  normalised by factored second moments (clipped at RMS 1, no first moment). The reference's
  learning-rate schedule is ignored with it, for the same reason. We build the same optimizer
  from transformers' port of the same fairseq code (`transformers.optimization.Adafactor`, whose
  defaults match torch_optimizer's), which needs `lr=None` to say so:
  `Adafactor(params, lr=None, relative_step=True, scale_parameter=True, warmup_init=False)`. So
  with "adafactor" the recipe's `lr`, `schedule` and `lr_warmup_frac` do not change the steps
  (the lr in events.jsonl is the schedule's nominal value). `weight_decay` (default 0, as the
  reference) is applied as Adafactor's own decay, scaled by its relative step size.

Adam and AdamW run fused (`fused=True`: one CUDA kernel updates every parameter, instead of a few
multi-tensor launches per step) when every parameter is a floating-point CUDA tensor
(`fused_ok`); the update is the same up to float rounding. On a CPU they stay PyTorch's default
implementation, as every job before trained.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def fused_ok(params: list) -> bool:
    """Whether Adam/AdamW can run fused: there are parameters and all are floating-point CUDA tensors."""
    return bool(params) and all(p.device.type == "cuda" and p.dtype.is_floating_point for p in params)


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimizer `name` over `params` (see the module docstring for what each name means)."""
    params = list(params)
    fused = {"fused": True} if fused_ok(params) else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fused)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(
            params,
            lr=None,
            eps=(1e-30, 1e-3),
            clip_threshold=1.0,
            decay_rate=-0.8,
            beta1=None,
            weight_decay=weight_decay,
            scale_parameter=True,
            relative_step=True,
            warmup_init=False,
        )
    raise ValueError(f"unknown optimizer {name!r}: expected adam, adamw or adafactor")  # the recipe check says so first
