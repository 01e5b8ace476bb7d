"""w2s_core.store.queries: the paged, read-only queries behind the TUI, on a database the test fills."""

from __future__ import annotations

import math
import statistics

import pytest

from w2s_core.analysis.pgr import chain_steps, pgr_summary, pgr_table
from w2s_core.store import Store
from w2s_core.store import queries as browse


@pytest.fixture
def store(filled_results):
    with Store.open(filled_results.root, readonly=True) as s:
        yield s, filled_results.hashes


def test_pages_cover_every_job_once_in_order(store):
    s, hashes = store
    assert browse.count_jobs(s) == len(hashes)
    pages = [browse.job_rows(s, sort="model", offset=o, limit=5) for o in range(0, len(hashes), 5)]
    seen = [r["hash"] for page in pages for r in page]
    assert sorted(seen) == sorted(hashes.values())
    models = [r["model"] for page in pages for r in page]
    assert models == sorted(models)


def test_search_matches_every_word_across_columns(store, filled_results):
    s, hashes = store
    rows = browse.job_rows(s, "m-small logconf", limit=100)  # weak model and method
    assert {(r["weak_model"], r["loss"]) for r in rows} == {("m-small", "logconf")}
    assert len(rows) == 2 * len(filled_results.seeds)
    assert browse.count_jobs(s, "synthetic grid-demo") == len(hashes)  # dataset and recipe name
    assert browse.job_rows(s, "no-such-thing") == []
    assert browse.count_jobs(s, status="running") == 0


def test_rows_carry_latest_metrics_role_and_final_result(store, filled_results):
    s, hashes = store
    row = browse.job_rows(s, hashes["gt m-mid s0"], limit=1)[0]
    assert row["last_loss"] == pytest.approx(0.45) and row["last_examples"] == 50
    assert row["final_acc"] == pytest.approx(filled_results.gt_acc["m-mid"])
    assert row["role"] == {"role": "gt", "model": "m-mid", "seed": 0}
    assert row["total_examples"] == 100  # half of n_train, one epoch


def test_metric_series_reads_only_what_is_new(store):
    s, hashes = store
    series, last = browse.metric_series(s, hashes["gt m-big s0"], ("loss", "test_acc"))
    assert [v for _, v in series["loss"]] == pytest.approx([0.65, 0.6, 0.55, 0.5, 0.45])
    assert [step for step, _ in series["test_acc"]] == [2, 4]
    more, again = browse.metric_series(s, hashes["gt m-big s0"], ("loss",), since_seq=2)
    assert [step for step, _ in more["loss"]] == [4, 5] and again == last == 4
    assert browse.metric_series(s, hashes["gt m-big s0"], since_seq=last) == ({}, last)


def test_chain_steps_average_each_step_over_seeds(store, filled_results):
    s, _ = store
    (chain,) = chain_steps(s, "r" * 64, "acc")
    assert chain["chain"] == list(filled_results.models) and chain["method"] == "boot-xent"
    assert chain["steps"] == pytest.approx([filled_results.gt_acc["m-small"], 0.66, 0.72])


def test_recipe_rows_give_every_planned_job_with_role_and_results(store, filled_results):
    s, hashes = store
    rows = browse.recipe_rows(s, "r" * 64)
    assert sorted(r["job_hash"] for r in rows) == sorted(hashes.values())
    assert all(r["status"] == "done" for r in rows)
    gt = {(r["role"]["model"], r["role"]["seed"]): r["results"]["test_acc"] for r in rows if r["role"]["role"] == "gt"}
    assert gt == {(m, seed): filled_results.gt_acc[m] for m in filled_results.models for seed in filled_results.seeds}
    assert browse.recipe_rows(s, "no-such-recipe") == []


def test_rows_and_summary_carry_both_estimators_for_the_results_screen(store, filled_results):
    """The shared fixture's jobs predate early stopping: final = selected, no oracle, and the paper's
    median of two seeds equals our mean (its GT accuracies are the same in every seed)."""
    s, _ = store
    rows = pgr_table(s, "r" * 64, "acc")
    for row in rows:
        assert row["pgr_median"] == pytest.approx(row["pgr_mean"]) and row["n_valid"] == len(filled_results.seeds)
        assert row["pgr_final"] == pytest.approx(row["pgr_selected"]) and math.isnan(row["pgr_oracle"])
    summary = {(e["kind"], e["method"]): e for e in pgr_summary(s, "r" * 64, "acc")}
    # xent over the 3 pairs x 2 seeds: 0.5 + 0.01 * seed / gap for gaps 0.1, 0.2, 0.1
    assert summary["transfer", "xent"]["pgr_median"] == pytest.approx(statistics.median([0.5] * 3 + [0.6, 0.55, 0.6]))
    assert summary["transfer", "logconf"]["n_valid"] == 6 and summary["bootstrap", "boot-xent"]["pairs"] == 1
