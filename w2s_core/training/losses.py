"""Training losses for the strong student, following openai/weak-to-strong.

Every loss maps (logits [N,2], weak soft labels [N,2], step_frac in [0,1]) to the
batch-mean loss, computed in float32 so bf16 models get the same numbers.

Most losses are per-example: their batch mean is the mean of per-minibatch means, so gradient
accumulation gives the same gradient whatever the minibatch. A *batch-level* loss is not: logconf's
target depends on the whole batch (the weak labels' class share and the student's rank within the
batch). Such a loss registers a target function in BATCH_TARGETS, (class-1 probabilities [N], weak
labels [N,2], step_frac) -> fixed target [N,2], and the loop fixes that target over the effective
batch before the minibatch passes (see `w2s_core.training.loop.batch_targets`); each minibatch then
trains with cross-entropy against its rows of the fixed target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from w2s_core.errors import W2SError
from w2s_core.spec.losses import LOSS_DEFAULTS, alpha_at, loss_alpha, resolve_loss  # noqa: F401  (re-exported for the loop)

LossFn = Callable[[Tensor, Tensor, float], Tensor]


def _prepare(logits: Tensor, weak: Tensor) -> tuple[Tensor, Tensor]:
    """Cast to float32 and check shapes, so a wrong dataset fails with a sentence, not an index error."""
    if logits.ndim != 2 or logits.shape[1] != 2 or weak.shape != logits.shape:
        raise W2SError(
            f"loss inputs have the wrong shape: logits {tuple(logits.shape)}, weak labels "
            f"{tuple(weak.shape)}; expected both to be [batch, 2] (binary classification)."
        )
    return logits.float(), weak.float()


def _soft_ce(logits: Tensor, target: Tensor) -> Tensor:
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def xent(logits: Tensor, weak: Tensor, step_frac: float) -> Tensor:
    """Cross-entropy of the student's softmax against the soft weak labels."""
    logits, weak = _prepare(logits, weak)
    return _soft_ce(logits, weak)


def kl(logits: Tensor, weak: Tensor, step_frac: float) -> Tensor:
    """KL(weak || student); xent minus the weak labels' entropy (0·log 0 = 0)."""
    logits, weak = _prepare(logits, weak)
    logp = F.log_softmax(logits, dim=-1)
    return (torch.xlogy(weak, weak) - weak * logp).sum(dim=-1).mean()


def product(logits: Tensor, weak: Tensor, step_frac: float, alpha: float = 1.0, beta: float = 1.0) -> Tensor:
    """Cross-entropy against target ∝ p^beta · weak^alpha (p detached), built in log space so it never divides by 0."""
    logits, weak = _prepare(logits, weak)
    logp = F.log_softmax(logits, dim=-1).detach()
    # weak^0 is 1 even where weak is 0, so the weak term vanishes when alpha == 0.
    log_weak = torch.where(weak > 0, alpha * torch.log(weak), -math.inf if alpha > 0 else 0.0)
    target = torch.softmax(beta * logp + log_weak, dim=-1)
    return _soft_ce(logits, target)


def hard_labels(probs1: Tensor, positive_share: float) -> Tensor:
    """0/1 labels marking the round(share·N) examples with highest probs1 as positive.

    Sorting (stable, so ties go to the earlier example) gives exactly that count even
    with ties, a batch of one, or an all-positive or all-negative share, where a
    quantile threshold would over- or under-shoot.
    """
    n = probs1.shape[0]
    k = min(n, max(0, math.floor(positive_share * n + 0.5)))
    order = torch.argsort(probs1, descending=True, stable=True)
    hard = torch.zeros(n, dtype=torch.float32, device=probs1.device)
    hard[order[:k]] = 1.0
    return hard


def logconf_target(
    probs1: Tensor, weak: Tensor, step_frac: float, alpha: float = 0.5, warmup_frac: float = 0.2, warmup: str = "linear"
) -> Tensor:
    """logconf's target (1−a)·weak + a·hard, hard marking the batch's share of most confident class-1 examples.

    probs1 are the student's (detached) class-1 probabilities over the batch the share and rank are
    taken in; weak is [N,2] float32 on the same device.
    """
    a = alpha_at(step_frac, alpha, warmup_frac, warmup)  # warmup: the schedule (spec.losses docstring)
    hard1 = hard_labels(probs1, weak[:, 1].mean().item())
    hard = torch.stack([1.0 - hard1, hard1], dim=1)
    return (1.0 - a) * weak + a * hard


def logconf(
    logits: Tensor, weak: Tensor, step_frac: float, alpha: float = 0.5, warmup_frac: float = 0.2, warmup: str = "linear"
) -> Tensor:
    """(1−a)·CE(f, weak) + a·CE(f, hard(f)): the auxiliary confidence loss with a linear warm-up of a."""
    logits, weak = _prepare(logits, weak)
    probs1 = torch.softmax(logits.detach(), dim=-1)[:, 1]
    return _soft_ce(logits, logconf_target(probs1, weak, step_frac, alpha, warmup_frac, warmup))


def soft_ce_rows(logits: Tensor, target: Tensor) -> Tensor:
    """Per-example cross-entropy [N] against soft targets, in float32 (a batch-level loss's minibatch term)."""
    logits, target = _prepare(logits, target)
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)


LOSSES: dict[str, Callable[..., Tensor]] = {"xent": xent, "kl": kl, "product": product, "logconf": logconf}

# Batch-level losses: their target function. LOSSES[name] on a whole batch equals the mean of
# soft_ce_rows(logits, target) with target = BATCH_TARGETS[name](detached probs1, weak, step_frac).
BATCH_TARGETS: dict[str, Callable[..., Tensor]] = {"logconf": logconf_target}
TargetFn = Callable[[Tensor, Tensor, float], Tensor]


def make_loss(name: str, params: dict) -> LossFn:
    """The loss `name` with its parameters bound; raises InputError for anything the recipe got wrong."""
    merged = resolve_loss(name, params)
    return partial(LOSSES[name], **merged)


def make_batch_target(name: str, params: dict) -> TargetFn | None:
    """The batch target function of a batch-level loss with its parameters bound; None for a per-example loss."""
    if name not in BATCH_TARGETS:
        return None
    return partial(BATCH_TARGETS[name], **resolve_loss(name, params))
