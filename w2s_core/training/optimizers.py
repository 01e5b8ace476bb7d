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
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimizer `name` over `params` (see the module docstring for what each name means)."""
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
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
