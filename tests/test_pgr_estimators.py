"""The two PGR estimators side by side (issue 9, item 5), on numbers worked out by hand.

Models s < m < l, seeds 0-2, method xent. GT accuracies:

    s: 0.60 0.62 0.64  mean 0.62
    m: 0.63 0.60 0.60  mean 0.61   (below s on average: the pair s->m is left out of the median)
    l: 0.80 0.70 0.58  mean 52/75  (seed 2's ceiling 0.58 is below its weak model's 0.64)

Transfer s->l: 0.70 0.66 0.66. Ours, per seed: 0.10/0.20 = 0.5, 0.04/0.08 = 0.5 and, with the
flipped sign, 0.02/-0.06 = -1/3; mean 2/9. The paper's: against the means 0.62 and 52/75 (gap
11/150): 0.08/(11/150) = 12/11, 0.04/(11/150) = 6/11, 6/11; median 6/11.

Transfer s->m: 0.62 0.61 0.61. Ours: 0.02/0.03, -0.01/-0.02, -0.03/-0.04 = 2/3, 1/2, 3/4; mean 23/36.
The paper's: excluded (ceiling mean 0.61 <= weak mean 0.62), so no median and n_valid 0.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest

from w2s_core.analysis import estimators
from w2s_core.analysis.pgr import pgr_summary, pgr_table
from w2s_core.status import JobStatus
from w2s_core.store import Store

GT = {"s": (0.60, 0.62, 0.64), "m": (0.63, 0.60, 0.60), "l": (0.80, 0.70, 0.58)}
W2S = {("s", "l"): (0.70, 0.66, 0.66), ("s", "m"): (0.62, 0.61, 0.61)}
RECIPE = "e" * 64


def _add(
    store: Store, name: str, kind: str, model: str, seed: int, role: dict, acc: float, status: str = JobStatus.DONE
) -> None:
    store.upsert_job({"hash": name, "kind": kind, "model": model, "seed": seed, "spec": {}, "recipe_hash": RECIPE})
    store.set_job_status(name, status)
    store.link_job(RECIPE, name, json.dumps(role))
    # AUROC as a nonlinear function of accuracy, so an estimator reading the wrong metric shows
    store.set_results(name, {"test_acc": acc, "test_auroc": acc**2, "n_test": 2000})


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path) as store:
        store.add_recipe(RECIPE, "estimators", "estimators.toml", "text")
        for model, accs in GT.items():
            for seed, acc in enumerate(accs):
                _add(store, f"gt-{model}-{seed}", "gt", model, seed, {"role": "gt", "model": model, "seed": seed}, acc)
        for (weak, strong), accs in W2S.items():
            for seed, acc in enumerate(accs):
                _add(
                    store,
                    f"t-{weak}{strong}-{seed}",
                    "transfer",
                    strong,
                    seed,
                    {"role": "transfer", "weak": weak, "strong": strong, "method": "xent", "seed": seed},
                    acc,
                )
        yield store


def _row(rows: list[dict], strong: str) -> dict:
    return next(r for r in rows if r["strong"] == strong)


def test_pure_estimators_differ_on_the_worked_example():
    pgrs = [(W2S["s", "l"][i] - GT["s"][i]) / (GT["l"][i] - GT["s"][i]) for i in range(3)]
    assert pgrs == pytest.approx([0.5, 0.5, -1 / 3])  # seed 2: ceiling below weak, sign flipped, kept
    assert estimators.mean_of_seed_pgrs(pgrs)["mean"] == pytest.approx(2 / 9)
    means = estimators.base_means((m, acc) for m, accs in GT.items() for acc in accs)
    assert means == pytest.approx({"s": 0.62, "m": 0.61, "l": 52 / 75})
    paper = estimators.median_pgr("s", "l", W2S["s", "l"], means)
    assert paper.pgrs == pytest.approx([12 / 11, 6 / 11, 6 / 11]) and paper.median == pytest.approx(6 / 11)
    excluded = estimators.median_pgr("s", "m", W2S["s", "m"], means)
    assert excluded.excluded and excluded.n_valid == 0 and math.isnan(excluded.median)
    summary = estimators.summarize([paper, excluded])
    assert summary == {"pgr_median": pytest.approx(6 / 11), "n_valid": 3, "pairs": 2, "pairs_excluded": 1}


def test_self_pair_and_unmeasured_model_are_left_out():
    means = {"a": 0.6, "b": 0.8}
    assert estimators.pair_is_valid("a", "b", means)
    assert not estimators.pair_is_valid("b", "b", means)  # weak == strong: no gap to recover
    assert not estimators.pair_is_valid("a", "c", means)  # no GT result for the strong model
    assert not estimators.pair_is_valid("b", "a", means)


def test_median_of_an_even_count_is_the_middle_mean_and_undefined_runs_drop():
    paper = estimators.median_pgr("a", "b", [0.7, 0.62, math.nan, 0.78], {"a": 0.6, "b": 0.8})
    assert paper.pgrs == pytest.approx([0.5, 0.1, 0.9]) and paper.median == pytest.approx(0.5)
    two = estimators.median_pgr("a", "b", [0.7, 0.62], {"a": 0.6, "b": 0.8})
    assert two.median == pytest.approx(0.3)  # (0.5 + 0.1) / 2, as pandas' median


def test_table_reports_both_estimators(store):
    rows = pgr_table(store, RECIPE)
    sl, sm = _row(rows, "l"), _row(rows, "m")
    assert sl["pgr_mean"] == pytest.approx(2 / 9) and sl["pgr"] == sl["pgr_mean"]
    assert sl["pgr_median"] == pytest.approx(6 / 11) and sl["n_valid"] == 3
    assert [p["pgr"] for p in sl["per_seed"]] == pytest.approx([0.5, 0.5, -1 / 3])
    assert sm["pgr_mean"] == pytest.approx(23 / 36)  # ours keeps the pair the paper leaves out
    assert math.isnan(sm["pgr_median"]) and sm["n_valid"] == 0


def test_summary_pools_every_valid_run_of_the_method(store):
    (xent,) = pgr_summary(store, RECIPE)
    assert (xent["kind"], xent["method"], xent["metric"], xent["recipe"]) == ("transfer", "xent", "acc", "estimators")
    assert xent["pgr_median"] == pytest.approx(6 / 11)
    assert (xent["n_valid"], xent["pairs"], xent["pairs_excluded"]) == (3, 2, 1)


def test_paper_means_use_every_gt_seed_while_ours_pairs_seeds(store):
    store.set_job_status("t-sl-1", JobStatus.FAILED)  # one transfer seed is missing
    sl = _row(pgr_table(store, RECIPE), "l")
    assert sl["seeds"] == [0, 2] and sl["pgr_mean"] == pytest.approx((0.5 - 1 / 3) / 2)
    # the weak and ceiling means still average all three GT seeds: runs 12/11 and 6/11
    assert sl["n_valid"] == 2 and sl["pgr_median"] == pytest.approx(9 / 11)


def test_auroc_uses_the_same_estimators_on_auroc(store):
    sq = {model: [a**2 for a in accs] for model, accs in GT.items()}
    w2s = [a**2 for a in W2S["s", "l"]]
    ours = statistics.mean((w2s[i] - sq["s"][i]) / (sq["l"][i] - sq["s"][i]) for i in range(3))
    weak, ceiling = statistics.mean(sq["s"]), statistics.mean(sq["l"])
    median = statistics.median((x - weak) / (ceiling - weak) for x in w2s)
    sl = _row(pgr_table(store, RECIPE, metric="auroc"), "l")
    assert sl["pgr_mean"] == pytest.approx(ours) and sl["pgr_median"] == pytest.approx(median)
    assert median != pytest.approx(6 / 11)  # the figure really moved with the metric
    (xent,) = pgr_summary(store, RECIPE, metric="auroc")
    assert xent["pgr_median"] == pytest.approx(median) and xent["metric"] == "auroc"


def test_results_command_shows_both(store, tmp_path, w2s_cli):
    rows = json.loads(w2s_cli(tmp_path, "results", "--all", "--json", check=True).stdout)
    sm = _row(rows, "m")
    assert sm["pgr_median"] is None and sm["n_valid"] == 0 and sm["pgr_mean"] == pytest.approx(23 / 36)
    (xent,) = json.loads(w2s_cli(tmp_path, "results", "--all", "--json", "--summary", check=True).stdout)
    assert xent["method"] == "xent" and xent["pgr_median"] == pytest.approx(6 / 11)
    text = w2s_cli(tmp_path, "results", "--all", check=True).stdout
    assert "median PGR per method" in text and "3 runs, 1 of 2 pairs left out" in text
    header = w2s_cli(tmp_path, "results", "--all", "--csv", "--summary", check=True).stdout.splitlines()[0]
    assert header.split(",") == [
        "recipe",
        "kind",
        "method",
        "metric",
        "pgr_median",
        "n_valid",
        "pairs",
        "pairs_excluded",
    ]
