"""Metrics against brute-force computations and published t quantiles."""

import math
import random
import statistics

import numpy as np
import pytest

from w2s_core.analysis.stats import accuracy, aggregate, agreement, auroc, pgr, t_quantile, warnings_for
from w2s_core.errors import W2SError


def _random_data(n: int, seed: int) -> tuple[list[float], list[int]]:
    rng = random.Random(seed)
    probs = [rng.choice([0.1, 0.3, 0.5, 0.7, 0.9]) for _ in range(n)]  # coarse values force ties
    labels = [int(rng.random() < 0.3 + 0.4 * p) for p in probs]
    return probs, labels


def test_accuracy_counts_matches_and_treats_half_as_class_zero():
    probs, labels = _random_data(50, seed=0)
    want = sum((p > 0.5) == bool(y) for p, y in zip(probs, labels)) / 50
    assert accuracy(probs, labels) == pytest.approx(want)
    assert accuracy([0.5, 0.51], [0, 1]) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_pair_counting_with_ties(seed):
    probs, labels = _random_data(40, seed)
    pos = [p for p, y in zip(probs, labels) if y == 1]
    neg = [p for p, y in zip(probs, labels) if y == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    assert auroc(np.array(probs), np.array(labels)) == pytest.approx(wins / (len(pos) * len(neg)))


def test_auroc_nan_for_one_class():
    assert math.isnan(auroc([0.2, 0.8], [1, 1]))
    assert math.isnan(auroc([0.2, 0.8], [0, 0]))


def test_bad_metric_inputs_raise_clear_errors():
    with pytest.raises(W2SError, match="differ in length"):
        accuracy([0.1, 0.2], [0])
    with pytest.raises(W2SError, match="0 or 1"):
        auroc([0.1, 0.2], [0, 2])


def test_agreement_splits_by_weak_correctness():
    rng = random.Random(7)
    student = [rng.random() for _ in range(60)]
    weak = [rng.random() for _ in range(60)]
    gt = [rng.randint(0, 1) for _ in range(60)]
    same = [(s > 0.5) == (w > 0.5) for s, w in zip(student, weak)]
    wrong = [int(w > 0.5) != y for w, y in zip(weak, gt)]
    got = agreement(student, weak, gt)
    assert got["agree"] == pytest.approx(sum(same) / 60)
    assert got["agree_weak_wrong"] == pytest.approx(statistics.mean(s for s, w in zip(same, wrong) if w))
    assert got["agree_weak_right"] == pytest.approx(statistics.mean(s for s, w in zip(same, wrong) if not w))


def test_agreement_empty_subsets_and_no_gt_are_nan():
    got = agreement([0.9, 0.1], [0.8, 0.2], [1, 0])  # weak always right
    assert got["agree"] == 1.0 and got["agree_weak_right"] == 1.0 and math.isnan(got["agree_weak_wrong"])
    no_gt = agreement([0.9, 0.1], [0.2, 0.2])
    assert no_gt["agree"] == 0.5 and math.isnan(no_gt["agree_weak_wrong"]) and math.isnan(no_gt["agree_weak_right"])


def test_pgr():
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.55, 0.8) == pytest.approx(-0.25)
    assert math.isnan(pgr(0.7, 0.8, 0.7))


@pytest.mark.parametrize("df,want", [(1, 12.706), (2, 4.303), (3, 3.182), (9, 2.262), (30, 2.042), (120, 1.980)])
def test_t_quantile_matches_tables(df, want):
    assert t_quantile(0.975, df) == pytest.approx(want, abs=5e-4)


def test_t_quantile_other_levels_and_large_df_tends_to_normal():
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=5e-4)
    assert t_quantile(0.995, 4) == pytest.approx(4.604, abs=5e-4)
    assert t_quantile(0.975, 5000) == pytest.approx(1.95996, abs=1e-3)


def test_aggregate_interval_drops_nan():
    values = [0.2, 0.5, float("nan"), 0.4, 0.9]
    clean = [0.2, 0.5, 0.4, 0.9]
    mean, sd = statistics.mean(clean), statistics.stdev(clean)
    half = 3.182 * sd / math.sqrt(4)  # t(0.975, df=3)
    got = aggregate(values)
    assert got["n"] == 4
    assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(sd)
    assert got["lo"] == pytest.approx(mean - half, abs=1e-3) and got["hi"] == pytest.approx(mean + half, abs=1e-3)


def test_aggregate_single_and_empty():
    one = aggregate([0.3, float("nan")])
    assert one["n"] == 1 and one["mean"] == 0.3 and math.isnan(one["lo"]) and math.isnan(one["hi"])
    none = aggregate([])
    assert none["n"] == 0 and math.isnan(none["mean"])


def test_warnings_ceiling_not_above_weak_names_figures():
    msgs = warnings_for(0.82, 0.80)
    assert len(msgs) == 1 and "0.820" in msgs[0] and "0.800" in msgs[0] and "PGR" in msgs[0]


def test_warnings_small_gap_uses_default_or_binomial_floor():
    assert any("noise" in m for m in warnings_for(0.80, 0.81))  # 0.01 < 0.014
    assert warnings_for(0.80, 0.82) == []  # 0.02 > 0.014
    # with n_test=400 the floor is 2*sqrt(0.25/400) = 0.05
    assert any("noise" in m for m in warnings_for(0.80, 0.84, n_test=400))
    assert warnings_for(0.80, 0.86, n_test=400) == []


def test_warnings_all_at_chance():
    assert any("chance" in m for m in warnings_for(0.49, 0.51, 0.505))
    assert not any("chance" in m for m in warnings_for(0.49, 0.51, 0.70))
    assert any("chance" in m for m in warnings_for(0.48, 0.52, n_test=100))  # floor 0.1
    assert not any("chance" in m for m in warnings_for(0.48, 0.52))  # floor 0.014
