"""Evaluation metrics, PGR, seed aggregation and sanity warnings (numpy only, no torch).

Predictions come in two forms, and every metric takes either:
- 1-D P(class 1) per example: a two-way task (binary classification, pairwise preference), as
  every job wrote before K-class tasks existed. Labels are 0/1; the hard prediction is p > 0.5.
- one distribution per example (a list of lists, ragged allowed, or a 2-D array): a K-class task
  (K values per example) or a choice among per-example candidates (chess: as many values as the
  position has legal moves). Labels are 0..len-1; the hard prediction is the argmax (ties to the
  lower index, so a two-way distribution [1-p, p] gives the same hard label as p > 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from w2s_core.errors import W2SError

# Accuracy spread that reference re-runs of the same experiment showed; used when n_test is unknown.
DEFAULT_NOISE_FLOOR = 0.014


def _probs(probs1) -> np.ndarray:
    return np.asarray(probs1, dtype=float).ravel()


def _dists(preds) -> list[np.ndarray] | None:
    """The predictions as one distribution per example, or None when they are 1-D P(class 1)."""
    if isinstance(preds, np.ndarray):
        return None if preds.ndim <= 1 else [row for row in preds.astype(float)]
    rows = list(preds)
    if not rows or np.ndim(rows[0]) == 0:
        return None
    return [np.asarray(row, dtype=float).ravel() for row in rows]


def _pair(probs1, labels) -> tuple[np.ndarray, np.ndarray]:
    """1-D float probabilities and 0/1 int labels of equal length, or a clear error."""
    p = _probs(probs1)
    y = np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise W2SError(f"metric inputs differ in length: {p.size} predictions but {y.size} labels.")
    if y.size and not np.isin(y, (0, 1)).all():
        raise W2SError(f"labels must be 0 or 1; got values {sorted(set(y.tolist()))[:5]}.")
    return p, y.astype(int)


def _dist_labels(dists: list[np.ndarray], labels) -> np.ndarray:
    """Int labels, one per distribution and each a valid index into it, or a clear error."""
    y = np.asarray(labels).ravel()
    if len(dists) != y.size:
        raise W2SError(f"metric inputs differ in length: {len(dists)} predictions but {y.size} labels.")
    bad = [(int(v), d.size) for v, d in zip(y.tolist(), dists) if not (float(v).is_integer() and 0 <= v < d.size)]
    if bad:
        raise W2SError(
            f"labels must index their example's classes or candidates; got label {bad[0][0]} for a "
            f"distribution over {bad[0][1]} ({len(bad)} such labels)."
        )
    return y.astype(int)


def _hard(probs1: np.ndarray) -> np.ndarray:
    # Strictly above 0.5 is class 1, matching argmax over [1-p, p] (ties go to class 0).
    return (probs1 > 0.5).astype(int)


def hard_predictions(preds) -> np.ndarray:
    """Each example's predicted class: p > 0.5 for 1-D P(class 1), else the distribution's argmax."""
    dists = _dists(preds)
    if dists is None:
        return _hard(_probs(preds))
    return np.array([int(np.argmax(d)) if d.size else -1 for d in dists], dtype=int)


def _mean_or_nan(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else math.nan


def accuracy(preds, labels) -> float:
    """Share of examples whose hard prediction (thresholded P(class 1), or argmax) equals the label (NaN for none)."""
    dists = _dists(preds)
    if dists is None:
        p, y = _pair(preds, labels)
        return _mean_or_nan(_hard(p) == y)
    y = _dist_labels(dists, labels)
    return _mean_or_nan(hard_predictions(dists) == y)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.ravel()]


def _binary_auroc(p: np.ndarray, y: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = _average_ranks(p)[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc(preds, labels) -> float:
    """Mann–Whitney AUROC (ties count half); NaN when only one class is present.

    Distributions: two-way ones are scored by their class-1 column, exactly as 1-D input. K > 2:
    the one-vs-rest macro AUROC, the mean over the classes that have both positives and negatives
    in `labels` (NaN when none has). Ragged distributions (per-example candidate sets: chess) have
    no classes to rank across examples: NaN. A caller whose candidate sets merely happen to be of
    one size must not call this (`w2s_core.training.evaluate` skips it for chess).
    """
    dists = _dists(preds)
    if dists is None:
        return _binary_auroc(*_pair(preds, labels))
    widths = {d.size for d in dists}
    if len(widths) != 1:
        return math.nan
    y = _dist_labels(dists, labels)
    table = np.stack(dists)
    if table.shape[1] == 2:
        return _binary_auroc(table[:, 1], y)
    scores = [_binary_auroc(table[:, k], (y == k).astype(int)) for k in range(table.shape[1])]
    defined = [s for s in scores if not math.isnan(s)]
    return float(np.mean(defined)) if defined else math.nan


def agreement(student, weak, gt_labels=None) -> dict[str, float]:
    """How often the student's hard prediction copies the weak label, overall and split by weak correctness.

    Imitating the weak supervisor's mistakes (high agree_weak_wrong) is the failure mode
    weak-to-strong training hopes to avoid. The split keys are NaN without gt_labels or
    when their subset is empty, so the result always has the same keys. Either input may be
    1-D P(class 1) or distributions (see the module docstring).
    """
    s_hard, w_hard = hard_predictions(student), hard_predictions(weak)
    if s_hard.shape != w_hard.shape:
        raise W2SError(f"agreement inputs differ in length: {s_hard.size} student vs {w_hard.size} weak predictions.")
    same = s_hard == w_hard
    out = {"agree": _mean_or_nan(same), "agree_weak_wrong": math.nan, "agree_weak_right": math.nan}
    if gt_labels is not None:
        w_dists = _dists(weak)
        y = _pair(weak, gt_labels)[1] if w_dists is None else _dist_labels(w_dists, gt_labels)
        weak_wrong = w_hard != y
        out["agree_weak_wrong"] = _mean_or_nan(same[weak_wrong])
        out["agree_weak_right"] = _mean_or_nan(same[~weak_wrong])
    return out


def pgr(weak: float, w2s: float, ceiling: float) -> float:
    """Performance gap recovered: (w2s − weak)/(ceiling − weak); NaN when the gap is zero."""
    gap = ceiling - weak
    return math.nan if gap == 0 else (w2s - weak) / gap


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer df, by the finite series of Abramowitz & Stegun 26.7.3–4.

    The series terms shrink geometrically, so it stops once they no longer change the sum.
    """
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        term = total = math.cos(theta) if df > 1 else 0.0
        for j in range(1, (df - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            if term < 1e-17 * total:
                break
            total += term
        return 2.0 / math.pi * (theta + s * total)
    term = total = 1.0
    for j in range(1, df // 2):
        term *= c2 * (2 * j - 1) / (2 * j)
        if term < 1e-17 * total:
            break
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t with integer df >= 1, by bisection on the exact CDF."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df >= 1; got p={p}, df={df}.")
    target = 2.0 * p - 1.0
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < target:
        lo, hi = hi, hi * 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _t_two_sided_mass(mid, df) < target else (lo, mid)
    return (lo + hi) / 2.0


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """Mean over seeds with a 95% Student-t interval; NaNs dropped, interval NaN below two values."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": n, "std": math.nan}
    std = float(x.std(ddof=1))
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n, "std": std}


def noise_floor(n_test: int | None = None) -> float:
    """Accuracy differences below this are indistinguishable from test-set sampling noise."""
    return 2.0 * math.sqrt(0.25 / n_test) if n_test else DEFAULT_NOISE_FLOOR


def warnings_for(
    weak_acc: float,
    ceiling_acc: float,
    w2s_acc: float | None = None,
    n_test: int | None = None,
    chance: float = 0.5,
) -> list[str]:
    """Reasons a PGR from these accuracies should not be trusted, as sentences for the user.

    `chance` is the accuracy of a uniform guess: 0.5 for two-way tasks, 1/K for K classes, the mean
    of 1/(legal moves) for chess (result.json's `chance_acc`)."""
    floor = noise_floor(n_test)
    floor_txt = (
        f"{floor:.3f} ({'2 binomial s.e. at n_test=' + str(n_test) if n_test else 'measured run-to-run spread'})"
    )
    out: list[str] = []
    gap = ceiling_acc - weak_acc
    if gap <= 0:
        out.append(
            f"The ceiling (accuracy {ceiling_acc:.3f}) is not above the weak supervisor ({weak_acc:.3f}), "
            "so PGR is undefined or meaningless: pick a stronger strong model or a weaker weak one."
        )
    elif gap < floor:
        out.append(
            f"The gap between ceiling ({ceiling_acc:.3f}) and weak ({weak_acc:.3f}) is {gap:.3f}, below the "
            f"noise floor {floor_txt}, so PGR is dominated by noise."
        )
    accs = {"weak": weak_acc, "ceiling": ceiling_acc}
    if w2s_acc is not None:
        accs["w2s"] = w2s_acc
    if all(abs(a - chance) <= floor for a in accs.values()):
        figures = ", ".join(f"{k} {a:.3f}" for k, a in accs.items())
        out.append(
            f"Every model is at chance ({figures}; within {floor_txt} of {chance:.3g}): the task may be unlearnable "
            "at this scale, or labels/inputs may be broken."
        )
    return out
