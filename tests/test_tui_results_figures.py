"""Issue 9 in the TUI: the paper's median PGR beside our mean and interval, the final, selected and
oracle figures side by side (`v`), and validation accuracy plotted over training in the live view."""

from __future__ import annotations

import asyncio

import pytest
from tui_helpers import add_job, line_with, screen_text

from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.table import ci_text
from w2s_core.store import Store
from w2s_tui.app import W2SApp
from w2s_tui.widgets import PgrTable

# a transfer's final figure a little below, its oracle a little above the selected one; GT jobs
# keep their selected figure as final and oracle
FINAL, ORACLE = -0.02, 0.03


def with_figures(filled) -> None:
    """Give every job of the filled database a final and an oracle test accuracy."""
    with Store.open(filled.root) as store:
        for name, h in filled.hashes.items():
            acc = store.results(h)["test_acc"]
            gt = name.startswith("gt ")
            store.set_results(
                h, {"final_test_acc": acc + (0 if gt else FINAL), "oracle_test_acc": acc + (0 if gt else ORACLE)}
            )


def cells(table: PgrTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_results_show_the_median_beside_the_mean_and_the_three_figures(filled_results, settle):
    with_figures(filled_results)
    with Store.open(filled_results.root, readonly=True) as store:
        expected = pgr_table(store, "r" * 64, "acc")

    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            table = app.screen.query_one(PgrTable)
            head = [str(c.label) for c in table.columns.values()]
            assert head[6:] == ["PGR", "95% CI", "seeds", "median", "valid"]
            for shown, row in zip(cells(table), expected):
                assert shown[6:] == [
                    f"{row['pgr_mean']:.2f}",
                    ci_text(row),
                    str(len(row["seeds"])),
                    f"{row['pgr_median']:.2f}",
                    str(row["n_valid"]),
                ]
            await pilot.press("v")
            await settle(pilot)
            head = [str(c.label) for c in table.columns.values()]
            assert head[3:] == ["PGR final", "PGR selected", "PGR oracle", "w2s final", "w2s selected", "w2s oracle"]
            for shown, row in zip(cells(table), expected):
                assert shown[3:6] == [f"{row[f'pgr_{w}']:.2f}" for w in ("final", "selected", "oracle")]
                assert shown[6:] == [f"{row[f'w2s_acc_{w}']:.3f}" for w in ("final", "selected", "oracle")]
            assert len({tuple(s[3:6]) for s in cells(table)}) > 1 and cells(table)[0][3] != cells(table)[0][5]
            assert "figures (v)" in line_with(screen_text(app), "recipe grid-demo")

    asyncio.run(body())


def test_the_live_view_plots_validation_accuracy_beside_test_accuracy(tmp_path, settle):
    events = [
        {
            "step": s,
            "loss": 1.0 / s,
            "train_acc": 0.5 + s / 100,
            "examples": 10 * s,
            **({"test_acc": 0.6 + s / 100, "val_acc": 0.55 + s / 100} if s % 2 == 0 else {}),
        }
        for s in range(1, 9)
    ]
    add_job(tmp_path, 1, events=events)

    async def body():
        app = W2SApp(tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            await pilot.pause(0.6)
            await settle(pilot)
            assert [v for _, v in app.screen.series["val_acc"]] == pytest.approx([0.57, 0.59, 0.61, 0.63])
            shown = screen_text(app)
            assert "val_acc" in shown and "test_acc" in shown  # both in the accuracy plot's legend

    asyncio.run(body())
