"""Training losses for the strong student, following openai/weak-to-strong.

Every loss maps (logits [N,C], weak soft labels [N,C], step_frac in [0,1]) to the batch-mean
loss, computed in float32 so bf16 models get the same numbers. C is 2 for a binary task and for a
pairwise preference (the two replies' rewards, so the softmax is σ(Δr) and cross-entropy against
a hard label is the Bradley–Terry loss), K for a K-class task, and for chess the largest number of
legal moves in the minibatch: an example with fewer candidates fills the rest with logit
PAD_LOGIT and target 0, and such padded candidates contribute nothing to any loss (their softmax
mass underflows to exactly 0 in float32, and their target is 0).

Most losses are per-example: their batch mean is the mean of per-minibatch means, so gradient
accumulation gives the same gradient whatever the minibatch. A *batch-level* loss is not: logconf's
two-way target depends on the whole batch (the weak labels' class share and the student's rank
within the batch). Such a loss registers a target function in BATCH_TARGETS, (class-1
probabilities [N], weak labels [N,2], step_frac) -> fixed target [N,2], and the loop fixes that
target over the effective batch before the minibatch passes (see
`w2s_core.training.loop.batch_targets`); each minibatch then trains with cross-entropy against its
rows of the fixed target. With more than two classes (or chess's candidates) logconf's hard label
is the student's own argmax, which is per-example: no batch target is needed (`make_batch_target`
gives None) and the loss runs per minibatch.
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

# The logit of a candidate an example does not have (chess: fewer legal moves than the widest
# example of its minibatch). Finite, so log_softmax stays finite, and low enough that its softmax
# mass is exactly 0 in float32 next to any real logit. bf16 rounds it to -9984: IS_PAD's threshold
# sits well above that and far below any logit a model produces.
PAD_LOGIT = -1e4
_PAD_BELOW = PAD_LOGIT / 2


def is_pad(logits: Tensor) -> Tensor:
    """Where `logits` hold PAD_LOGIT (a padded candidate), as a bool mask of the same shape."""
    return logits <= _PAD_BELOW


def _prepare(logits: Tensor, weak: Tensor) -> tuple[Tensor, Tensor]:
    """Cast to float32 and check shapes, so a wrong dataset fails with a sentence, not an index error.

    C = 1 passes too: a chess minibatch whose positions all have a single legal move (its loss is 0).
    """
    if logits.ndim != 2 or logits.shape[1] < 1 or weak.shape != logits.shape:
        raise W2SError(
            f"loss inputs have the wrong shape: logits {tuple(logits.shape)}, weak labels "
            f"{tuple(weak.shape)}; expected both to be [batch, classes] with the same classes."
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
    # a padded candidate is no option, whatever alpha and beta (p^0 would give it mass at beta == 0)
    log_weak = log_weak.masked_fill(is_pad(logits), -math.inf)
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
    """logconf's two-way target (1−a)·weak + a·hard, hard marking the batch's share of most confident class-1 examples.

    probs1 are the student's (detached) class-1 probabilities over the batch the share and rank are
    taken in; weak is [N,2] float32 on the same device.
    """
    a = alpha_at(step_frac, alpha, warmup_frac, warmup)  # warmup: the schedule (spec.losses docstring)
    hard1 = hard_labels(probs1, weak[:, 1].mean().item())
    hard = torch.stack([1.0 - hard1, hard1], dim=1)
    return (1.0 - a) * weak + a * hard


def argmax_target(
    logits: Tensor, weak: Tensor, step_frac: float, alpha: float = 0.5, warmup_frac: float = 0.2, warmup: str = "linear"
) -> Tensor:
    """logconf's target beyond two ways: (1−a)·weak + a·onehot(argmax f), the student's own hard prediction.

    The paper defines hard(f) for binary tasks only: a threshold chosen so the batch's positive
    share matches the weak labels' (the reference's `logconf_loss_fn`). With K classes there is
    no single threshold to balance; we harden to the argmax, the natural K-way reading of "the
    student's confident prediction", as the issue asks (documented in `w2s_core.spec.losses`). It
    is per-example, so it does not depend on the batch; a padded candidate (PAD_LOGIT) never wins.
    Unlike the binary rule it keeps no class balance: a student that already favours one class
    hardens towards it, so a slow learner can collapse onto one class (a slow linear probe on a
    tiny three-way task did, at test accuracy 1/3 with AUROC 0.99). At the very start (all logits
    equal) the argmax is class 0; the warm-up keeps a ≈ 0 there.
    """
    a = alpha_at(step_frac, alpha, warmup_frac, warmup)
    hard = F.one_hot(logits.detach().argmax(dim=-1), logits.shape[1]).to(weak.dtype)
    return (1.0 - a) * weak + a * hard


def logconf(
    logits: Tensor,
    weak: Tensor,
    step_frac: float,
    alpha: float = 0.5,
    warmup_frac: float = 0.2,
    warmup: str = "linear",
    two_way: bool = True,
) -> Tensor:
    """(1−a)·CE(f, weak) + a·CE(f, hard(f)): the auxiliary confidence loss with a linear warm-up of a.

    `two_way`: hard(f) by the batch's class share (binary and pairwise tasks, as the reference);
    otherwise the student's argmax (`argmax_target`: K > 2 classes, chess).
    """
    logits, weak = _prepare(logits, weak)
    if not two_way:
        return _soft_ce(logits, argmax_target(logits, weak, step_frac, alpha, warmup_frac, warmup))
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


def make_loss(name: str, params: dict, n_classes: int = 2) -> LossFn:
    """The loss `name` with its parameters bound; raises InputError for anything the recipe got wrong.

    `n_classes`: the task's classes (2 for binary and pairwise, K, or 0 for per-example candidate
    sets as chess); anything but 2 makes logconf harden to the student's argmax.
    """
    merged = resolve_loss(name, params)
    if name == "logconf" and n_classes != 2:
        merged["two_way"] = False
    return partial(LOSSES[name], **merged)


def make_batch_target(name: str, params: dict, n_classes: int = 2) -> TargetFn | None:
    """The batch target function of a batch-level loss with its parameters bound; None for a per-example
    loss, and for logconf beyond two ways (its argmax target is per-example)."""
    if name not in BATCH_TARGETS or n_classes != 2:
        return None
    return partial(BATCH_TARGETS[name], **resolve_loss(name, params))
