"""w2s_core.store.queries: the paged, read-only queries behind the TUI, on a database the test fills."""

from __future__ import annotations

import pytest

from w2s_core import analysis

from w2s_core.store import queries as browse
from w2s_core.store import Store

from test_tui_support import GT_ACC, MODELS, SEEDS, fill


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    hashes = fill(root)
    with Store.open(root, readonly=True) as s:
        yield s, hashes


def test_pages_cover_every_job_once_in_order(store):
    s, hashes = store
    assert browse.count_jobs(s) == len(hashes)
    pages = [browse.job_rows(s, sort="model", offset=o, limit=5) for o in range(0, len(hashes), 5)]
    seen = [r["hash"] for page in pages for r in page]
    assert sorted(seen) == sorted(hashes.values())
    models = [r["model"] for page in pages for r in page]
    assert models == sorted(models)


def test_search_matches_every_word_across_columns(store):
    s, hashes = store
    rows = browse.job_rows(s, "m-small logconf", limit=100)  # weak model and method
    assert {(r["weak_model"], r["loss"]) for r in rows} == {("m-small", "logconf")}
    assert len(rows) == 2 * len(SEEDS)
    assert browse.count_jobs(s, "synthetic grid-demo") == len(hashes)  # dataset and recipe name
    assert browse.job_rows(s, "no-such-thing") == []
    assert browse.count_jobs(s, status="running") == 0


def test_rows_carry_latest_metrics_role_and_final_result(store):
    s, hashes = store
    row = browse.job_rows(s, hashes["gt m-mid s0"], limit=1)[0]
    assert row["last_loss"] == pytest.approx(0.45) and row["last_examples"] == 50
    assert row["final_acc"] == pytest.approx(GT_ACC["m-mid"])
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


def test_chain_steps_average_each_step_over_seeds(store):
    s, _ = store
    (chain,) = analysis.chain_steps(s, "r" * 64, "acc")
    assert chain["chain"] == list(MODELS) and chain["method"] == "boot-xent"
    assert chain["steps"] == pytest.approx([GT_ACC["m-small"], 0.66, 0.72])
