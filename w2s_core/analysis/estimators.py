"""The two PGR estimators `w2s results` reports side by side, as pure functions of the figures.

**Ours, the mean of per-seed PGR** (`pgr_mean`, `pgr_lo`, `pgr_hi`): for each seed, PGR from that
seed's own weak, weak-to-strong and ceiling jobs; then the mean over seeds with a 95% Student-t
interval. A seed whose ceiling is below its weak model is kept (its PGR has the flipped sign), so
the interval shows the noise honestly; only a seed with a zero gap (PGR undefined) drops out.

**The paper's, the median against seed-averaged models** (`pgr_median`, `n_valid`), as
openai/weak-to-strong `notebooks/Plotting.ipynb` computes it: average each model's GT result over
all of its seeds; compute every transfer run's PGR against those two means; leave out the pair
whose ceiling mean is not above its weak mean, and a pair whose weak and strong model are the same;
report the median of the valid runs' PGR (per row: over that pair's seeds; per method: over every
pair and seed, see `summarize`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from w2s_core.analysis import stats


def mean_of_seed_pgrs(pgrs: Sequence[float]) -> dict[str, float]:
    """Ours: mean of per-seed PGR with its 95% t interval ({"mean", "lo", "hi", "n", "std"})."""
    return stats.aggregate(pgrs)


def base_means(gt: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Each model's GT result averaged over its seeds ({model: mean}), undefined (NaN) results left out."""
    by_model: dict[str, list[float]] = {}
    for model, value in gt:
        if not math.isnan(value):
            by_model.setdefault(model, []).append(value)
    return {model: sum(v) / len(v) for model, v in by_model.items()}


def pair_is_valid(weak: str, strong: str, means: dict[str, float]) -> bool:
    """The paper's rule: both models measured, different models, ceiling mean above weak mean."""
    return weak != strong and weak in means and strong in means and means[strong] > means[weak]


@dataclass
class MedianPgr:
    """The paper's estimator for one pair: the valid runs' PGR, their median and count."""

    pgrs: list[float] = field(default_factory=list)
    excluded: bool = False  # the pair fails `pair_is_valid`, so none of its runs count

    @property
    def n_valid(self) -> int:
        return len(self.pgrs)

    @property
    def median(self) -> float:
        return statistics.median(self.pgrs) if self.pgrs else math.nan


def median_pgr(weak: str, strong: str, w2s_runs: Iterable[float], means: dict[str, float]) -> MedianPgr:
    """The paper's PGR of each run of one pair against the seed-averaged weak and ceiling (none
    when the pair is excluded); runs with an undefined result drop out as the notebook's NaN filter does."""
    if not pair_is_valid(weak, strong, means):
        return MedianPgr(excluded=True)
    w, c = means[weak], means[strong]
    return MedianPgr([(s - w) / (c - w) for s in w2s_runs if not math.isnan(s)])


def summarize(pairs: Iterable[MedianPgr]) -> dict[str, float | int]:
    """One method's figure over all its pairs, as the notebook's per-loss table: the median over
    every valid run of every pair (not the median of the pairs' medians)."""
    pairs = list(pairs)
    runs = MedianPgr([p for pair in pairs for p in pair.pgrs])
    excluded = sum(1 for pair in pairs if pair.excluded)
    return {"pgr_median": runs.median, "n_valid": runs.n_valid, "pairs": len(pairs), "pairs_excluded": excluded}
