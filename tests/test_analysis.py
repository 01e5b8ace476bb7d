"""The PGR table built from a store the test fills: per-seed PGR, mean and 95% interval, chains."""

import json
import math
import statistics
import subprocess
import sys

import pytest

from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.table import format_table
from w2s_core.store import Store

ACC = {  # (model, seed) -> GT test accuracy
    ("s", 0): 0.60,
    ("s", 1): 0.62,
    ("s", 2): 0.58,
    ("m", 0): 0.70,
    ("m", 1): 0.69,
    ("m", 2): 0.72,
    ("l", 0): 0.80,
    ("l", 1): 0.83,
    ("l", 2): 0.79,
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
            add(
                store,
                f"t-{seed}",
                "transfer",
                "l",
                seed,
                {"role": "transfer", "weak": "s", "strong": "l", "method": "xent", "seed": seed},
                acc,
            )
        for step, by_seed in CHAIN.items():
            for seed, acc in by_seed.items():
                add(
                    store,
                    f"b{step}-{seed}",
                    "bootstrap",
                    "ml"[step - 1],
                    seed,
                    {"role": "bootstrap", "chain": ["s", "m", "l"], "method": "boot", "step": step, "seed": seed},
                    acc,
                )
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
    code = (
        "import sys, w2s_core.analysis.stats; "
        "assert 'w2s_core.store' not in sys.modules and 'sqlite_utils' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- final, selected and oracle figures (issue 9, item 7) ----------------------------------------

NEW = {  # seed 0: a job recorded with early stopping's keys; selected != final, oracle the best eval point
    "w": {"test_acc": 0.60, "final_test_acc": 0.58, "oracle_test_acc": 0.62, "selected_step": 40, "oracle_step": 20},
    "c": {"test_acc": 0.80, "final_test_acc": 0.82, "oracle_test_acc": 0.84, "selected_step": 60, "oracle_step": 80},
    "t": {
        "test_acc": 0.70,
        "final_test_acc": 0.66,
        "oracle_test_acc": 0.74,
        "selected_step": 50,
        "oracle_step": 30,
        "test_auroc": 0.9,
        "final_test_auroc": 0.8,
    },
}
OLD = {"w": {"test_acc": 0.60}, "c": {"test_acc": 0.80}, "t": {"test_acc": 0.75}}  # seed 1: before the change


def fill_figures(store, seeds: dict[int, dict]) -> None:
    store.add_recipe("f", "figures", "figures.toml", "text")
    for seed, jobs in seeds.items():
        for name, kind, model, role in (
            ("w", "gt", "w", {"role": "gt", "model": "w"}),
            ("c", "gt", "c", {"role": "gt", "model": "c"}),
            ("t", "transfer", "c", {"role": "transfer", "weak": "w", "strong": "c", "method": "xent"}),
        ):
            h = f"{name}{seed}"
            store.upsert_job({"hash": h, "kind": kind, "model": model, "seed": seed, "spec": {}, "recipe_hash": "f"})
            store.set_job_status(h, "done")
            store.link_job("f", h, json.dumps({**role, "seed": seed}))
            store.set_results(h, {"test_auroc": jobs[name]["test_acc"] - 0.1, **jobs[name]})


def test_final_selected_and_oracle_figures_with_old_rows(tmp_path):
    with Store.open(tmp_path) as store:
        fill_figures(store, {0: NEW, 1: OLD})
        (row,) = pgr_table(store, "f")
    assert row["w2s_acc_selected"] == pytest.approx((0.70 + 0.75) / 2) == row["w2s_acc"]
    assert row["w2s_acc_final"] == pytest.approx((0.66 + 0.75) / 2)  # the old seed's test_acc is its final
    assert row["weak_acc_final"] == pytest.approx(0.59) and row["ceiling_acc_final"] == pytest.approx(0.81)
    assert row["w2s_acc_oracle"] == pytest.approx(0.74) and row["ceiling_acc_oracle"] == pytest.approx(0.84)
    assert row["pgr_selected"] == pytest.approx((0.5 + 0.75) / 2) == row["pgr_mean"]
    assert row["pgr_final"] == pytest.approx((0.08 / 0.24 + 0.75) / 2)
    assert row["pgr_oracle"] == pytest.approx(0.12 / 0.22)  # seed 1 has no oracle: left out, not zero
    old_seed = row["per_seed"][1]
    assert old_seed["w2s_final"] == old_seed["w2s"] == 0.75 and math.isnan(old_seed["pgr_oracle"])


def test_old_rows_only_give_null_oracle_and_auroc_has_none(tmp_path, w2s_cli):
    with Store.open(tmp_path) as store:
        fill_figures(store, {0: OLD, 1: OLD})
        (row,) = pgr_table(store, "f")
        (auroc,) = pgr_table(store, "f", metric="auroc")
    assert row["pgr_final"] == pytest.approx(row["pgr_selected"]) == pytest.approx(0.75)
    assert all(math.isnan(row[k]) for k in ("weak_acc_oracle", "w2s_acc_oracle", "ceiling_acc_oracle", "pgr_oracle"))
    assert auroc["w2s_auroc_final"] == auroc["w2s_auroc_selected"] == pytest.approx(0.65)
    assert math.isnan(auroc["pgr_oracle"])
    (cli_row,) = json.loads(w2s_cli(tmp_path, "results", "--all", "--json", check=True).stdout)
    assert cli_row["pgr_oracle"] is None and cli_row["w2s_acc_final"] == pytest.approx(0.75)


def test_auroc_figures_read_the_final_auroc(tmp_path):
    with Store.open(tmp_path) as store:
        fill_figures(store, {0: NEW})
        (row,) = pgr_table(store, "f", metric="auroc")
    assert row["w2s_auroc_selected"] == pytest.approx(0.9) and row["w2s_auroc_final"] == pytest.approx(0.8)
    # GT jobs here report no final_test_auroc: their selected AUROC stands in for it
    assert row["weak_auroc_final"] == pytest.approx(0.5) and math.isnan(row["w2s_auroc_oracle"])
