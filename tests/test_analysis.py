"""The PGR table built from a store the test fills: per-seed PGR, mean and 95% interval, chains."""

import json
import math
import statistics
import subprocess
import sys

import pytest

from w2s_core.analysis import format_table, pgr_table
from w2s_core.store import Store

ACC = {  # (model, seed) -> GT test accuracy
    ("s", 0): 0.60, ("s", 1): 0.62, ("s", 2): 0.58,
    ("m", 0): 0.70, ("m", 1): 0.69, ("m", 2): 0.72,
    ("l", 0): 0.80, ("l", 1): 0.83, ("l", 2): 0.79,
}
W2S = {0: 0.71, 1: 0.74, 2: 0.70}  # transfer s -> l, xent
CHAIN = {1: {0: 0.66, 1: 0.67, 2: 0.65}, 2: {0: 0.73, 1: 0.75, 2: 0.72}}  # s -> m -> l, by step


def add(store, name, kind, model, seed, role, acc, status="done"):
    store.upsert_job({"hash": name, "kind": kind, "model": model, "seed": seed, "spec": {}, "recipe_hash": "r"})
    store.set_job_status(name, status)
    store.link_job("r", name, json.dumps(role))
    store.set_results(name, {"test_acc": acc, "test_auroc": acc + 0.05, "n_test": 2000, "agree": 0.9})


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path) as store:
        store.add_recipe("r", "grid", "grid.toml", "text")
        for (model, seed), acc in ACC.items():
            add(store, f"gt-{model}-{seed}", "gt", model, seed, {"role": "gt", "model": model, "seed": seed}, acc)
        for seed, acc in W2S.items():
            add(store, f"t-{seed}", "transfer", "l", seed,
                {"role": "transfer", "weak": "s", "strong": "l", "method": "xent", "seed": seed}, acc)
        for step, by_seed in CHAIN.items():
            for seed, acc in by_seed.items():
                add(store, f"b{step}-{seed}", "bootstrap", "ml"[step - 1], seed,
                    {"role": "bootstrap", "chain": ["s", "m", "l"], "method": "boot", "step": step, "seed": seed}, acc)
        yield store


def expected_pgrs(w2s):
    return [(w2s[s] - ACC[("s", s)]) / (ACC[("l", s)] - ACC[("s", s)]) for s in (0, 1, 2)]


def test_transfer_row_aggregates_over_seeds(store):
    rows = pgr_table(store, "r")
    row = next(r for r in rows if r["kind"] == "transfer")
    pgrs = expected_pgrs(W2S)
    assert [p["pgr"] for p in row["per_seed"]] == pytest.approx(pgrs)
    mean, sem = statistics.mean(pgrs), statistics.stdev(pgrs) / math.sqrt(3)
    assert row["pgr"] == pytest.approx(mean)
    assert row["pgr_lo"] == pytest.approx(mean - 4.303 * sem, abs=1e-3)  # t(0.975, df=2) = 4.303
    assert row["pgr_hi"] == pytest.approx(mean + 4.303 * sem, abs=1e-3)
    assert row["weak_acc"] == pytest.approx(statistics.mean(ACC[("s", s)] for s in range(3)))
    assert row["seeds"] == [0, 1, 2] and row["warnings"] == []


def test_chain_row_uses_the_last_step(store):
    row = next(r for r in pgr_table(store, "r") if r["kind"] == "bootstrap")
    assert row["chain"] == ["s", "m", "l"]
    assert row["pgr"] == pytest.approx(statistics.mean(expected_pgrs(CHAIN[2])))


def test_auroc_metric_and_missing_seed(store):
    store.set_job_status("t-2", "failed")  # a failed seed drops out instead of poisoning the mean
    row = next(r for r in pgr_table(store, "r", metric="auroc") if r["kind"] == "transfer")
    assert row["seeds"] == [0, 1]
    assert row["w2s_auroc"] == pytest.approx(statistics.mean([W2S[0] + 0.05, W2S[1] + 0.05]))


def test_degenerate_setup_warns_and_table_prints(store):
    for seed in range(3):  # the ceiling falls below the weak model
        store.set_results(f"gt-l-{seed}", {"test_acc": 0.55})
    row = next(r for r in pgr_table(store, "r") if r["kind"] == "transfer")
    assert any("not above" in w for w in row["warnings"])
    text = format_table(pgr_table(store, "r"))
    assert "warning:" in text and "m > l" in text and "xent" in text


def test_stats_alone_does_not_load_the_store():
    """A training job imports analysis.stats; it must not pull in the database layer."""
    code = ("import sys, w2s_core.analysis.stats; "
            "assert 'w2s_core.store' not in sys.modules and 'sqlite_utils' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
