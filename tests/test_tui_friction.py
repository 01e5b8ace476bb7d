"""The friction of issue 15, removed: where results go, exports, counts, filters, search by the text
shown, compare axes, keys that keep their place, the recipe list, and every screen usable at 80×24."""

from __future__ import annotations

import asyncio
import csv
import re

import pytest
from tui_helpers import TINY, add_job, line_with, screen_text

from w2s_core import cli
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_tui.app import W2SApp
from w2s_tui.widgets import JobTable, training_fraction


def run(body) -> None:
    asyncio.run(body())


def test_the_results_folder_is_shown_and_exports_write_the_marked_rows(filled_results, settle):
    root = filled_results.root

    async def body():
        app = W2SApp(root, start="history")
        async with app.run_test(size=(200, 40)) as pilot:
            await settle(pilot)
            assert str(root) in line_with(screen_text(app), "History")  # the header names the folder
            table = app.screen.query_one(JobTable)
            for row in (0, 3):
                table.move_cursor(row=row)
                await pilot.press("space")
            await pilot.press("e")
            await settle(pilot)
            (export,) = (root / "exports").glob("history-*.csv")
            rows = list(csv.DictReader(export.open()))
            assert len(rows) == 2 and {r["hash"] for r in rows} == set(app.screen.marked)
            assert f"exported 2 jobs to {export}" in screen_text(app)  # kept on the summary line

    run(body)


def test_counts_filters_cancel_and_search_by_the_text_shown(filled_results, settle):
    toasts: list[str] = []

    async def body():
        app = W2SApp(filled_results.root)
        app.notify = lambda message, **kwargs: toasts.append(str(message))
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            shown = screen_text(app)
            assert "22 jobs · any status" in shown and "last loss" in line_with(shown, " model ")
            for _ in range(6):
                await pilot.press("f")
            await settle(pilot)
            assert "0 of 22 jobs match · skipped" in screen_text(app)  # f reaches skipped
            await pilot.press("f")
            await pilot.press("c")  # a finished job: refused at once, no second press needed
            assert any("is done: only queued or running jobs can be cancelled" in t for t in toasts), toasts
            app.screen.query_one("#search").value = "ceiling"  # the role text GT rows show
            await settle(pilot)
            assert "6 of 22 jobs match" in screen_text(app)
            table = app.screen.query_one(JobTable)
            assert {table.get_row_at(i)[2] for i in range(table.row_count)} == {"GT weak/ceiling"}

    run(body)


def test_home_and_end_move_the_cursor(tmp_path, settle):
    for n in range(60):
        add_job(tmp_path, n, status=JobStatus.DONE, started_at=1_700_000_000.0 + n)

    async def body():
        app = W2SApp(tmp_path)
        async with app.run_test(size=(120, 20)) as pilot:
            await settle(pilot)
            table = app.screen.query_one(JobTable)
            await pilot.press("end")
            await settle(pilot)
            assert table.cursor_row == 59 and app.screen.current()["hash"].startswith("00")  # the oldest
            await pilot.press("home")
            await settle(pilot)
            assert table.cursor_row == 0 and app.screen.current()["hash"].startswith("59")

    run(body)


def test_compare_names_the_recipe_and_shares_a_training_fraction_axis(filled_results, settle):
    async def body():
        app = W2SApp(filled_results.root, start="history")
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            for _ in range(2):
                await pilot.press("space", "down")
            await pilot.press("c")
            await settle(pilot)
            shown = screen_text(app)
            assert "grid-demo · m-big boot 2/2 s1" in shown and "fraction of training" in shown

    run(body)


def test_training_fraction_lines_up_runs_of_different_lengths():
    short = {"examples": [(1, 50.0), (2, 100.0)]}
    long = {"examples": [(s, 25.0 * s) for s in range(1, 9)]}
    assert training_fraction([(2, 0.9)], short, 100) == [(1.0, 0.9)]
    assert training_fraction([(8, 0.8), (4, 0.7)], long, 200) == [(1.0, 0.8), (0.5, 0.7)]
    assert training_fraction([(3, 0.5), (6, 0.6)], {"loss": [(6, 1.0)]}, None) == [(0.5, 0.5), (1.0, 0.6)]


@pytest.fixture
def two_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "a-long-recipe-name-that-would-wrap-in-thirty-columns.toml").write_text(TINY)
    (tmp_path / "here.toml").write_text(TINY.replace('name = "tiny"', 'name = "here"'))
    monkeypatch.setattr(cli, "DEFAULT_RECIPE", tmp_path / "recipes" / "x.toml")
    return tmp_path


def test_the_recipe_list_groups_by_folder_and_r_keeps_the_selection(two_recipes, settle):
    async def body():
        app = W2SApp(two_recipes / "results")
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            options = app.screen.query_one("#recipe-list")
            prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert prompts == [
                "./recipes",
                "a-long-recipe-name-that-would-wrap-in-thirty-columns.toml",
                ". (here)",
                "here.toml",
            ]
            assert "a-long-recipe-name-that-w…" in screen_text(app)  # one line, cut with an ellipsis
            options.highlighted = 3
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            assert app.screen.selected().name == "here.toml"
            preview = str(app.screen.query_one("#preview").render())
            assert f"launches it into {two_recipes / 'results'}" in preview, preview

    run(body)


def test_recipe_keys_keep_the_recipe_you_were_on(filled_results, settle):
    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            with Store.open(filled_results.root) as store:  # a newer recipe arrives: it sorts first
                store.add_recipe("n" * 64, "newer", "newer.toml", "name = 'newer'")
                store.link_job(
                    "n" * 64, filled_results.hashes["gt m-big s0"], '{"role": "gt", "model": "m-big", "seed": 0}'
                )
            await pilot.press("r")
            await settle(pilot)
            assert "recipe grid-demo (2/2)" in screen_text(app)  # still on grid-demo
            await pilot.press("right_square_bracket")
            await settle(pilot)
            assert "recipe newer (1/2)" in screen_text(app)

    run(body)


@pytest.mark.parametrize("start", ["runs", "results", "history", "recipes", "live"])
def test_every_screen_is_usable_at_80x24(filled_results, settle, start):
    async def body():
        app = W2SApp(filled_results.root, start="runs" if start == "live" else start)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            if start == "live":
                await pilot.press("enter")
                await pilot.pause(0.6)
                await settle(pilot)
            shown = screen_text(app)
            lines = shown.splitlines()
            assert len(lines) == 24 and all(len(line.rstrip()) <= 80 for line in lines)
            assert "? Help" in lines[-1] and "q Quit" in lines[-1]  # the footer keeps ? and q
            if start == "runs":
                head = line_with(shown, " model ")
                assert all(c in head for c in ("model", "role", "recipe")), head
                assert "grid-demo" in line_with(shown, " done ")
            elif start == "results":
                head = line_with(shown, " method ")
                assert "PGR" in head and "95% CI" in head and "median" in head, head
                assert "[0.46, 1.09]" in shown
            elif start == "history":
                assert re.search(r"2023-11-1[45] \d\d:\d\d", line_with(shown, " done ")), shown  # a readable start
            elif start == "live":
                assert "loss" in shown and "accuracy" in shown and "finished" in shown

    run(body)
