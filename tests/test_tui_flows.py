"""The TUI driven by Textual's Pilot: launch a tiny recipe through the real subprocess path, watch its
jobs finish, open the live view, read results and filter history; plus views of a filled database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import tiny_recipe

from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_tui.app import W2SApp, known_binding_ids
from w2s_tui.screens import LiveScreen, RecipesScreen
from w2s_tui.widgets import JobTable

TINY = tiny_recipe("tui-tiny", train="lr = 0.005\neval_every = 2\n", tail="\n[launch]\nparallel = 2\n")


def cell_texts(table: DataTable | JobTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


# trains three tiny jobs in trainer subprocesses: 20-45 s on 2 busy cores
def test_launch_watch_results_history(tmp_path, monkeypatch, settle, w2s_cli):
    asyncio.run(_test_launch_watch_results_history(tmp_path, monkeypatch, settle, w2s_cli))


async def _test_launch_watch_results_history(tmp_path, monkeypatch, settle, w2s_cli):
    cache = os.environ.get("W2S_CACHE") or str(tmp_path / "cache")
    monkeypatch.setenv("W2S_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "broken.toml").write_text(TINY.replace("epochs = 1", "epochs = 1\nepochz = 2"))
    results = tmp_path / "results"
    app = W2SApp(results)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await _launch_only_the_valid_recipe(app, pilot, settle)
        proc, launch_log = app.launches[0]
        try:
            await _watch_the_jobs_finish(app, pilot, settle, launch_log)
            await _read_results_and_history(
                app, pilot, settle, json.loads(w2s_cli(results, "results", "--json", check=True).stdout)
            )
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    with Store.open(results, readonly=True) as store:
        assert {j["status"] for j in store.jobs()} == {JobStatus.DONE}


async def _launch_only_the_valid_recipe(app, pilot, settle) -> None:
    assert isinstance(app.screen, RecipesScreen)  # no database yet: start where runs begin
    options = app.screen.query_one("#recipe-list")
    names = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    options.highlighted = names.index("broken.toml")
    await settle(pilot)
    preview = str(app.screen.query_one("#preview", Static).render())
    assert "Invalid recipe" in preview and "epochz" in preview and "did you mean 'epochs'" in preview
    await pilot.press("l")  # an invalid recipe is not launched
    assert app.launches == []
    options.highlighted = names.index("tiny.toml")
    await settle(pilot)
    assert "3 jobs · 0 cached · 3 to run" in str(app.screen.query_one("#preview", Static).render())
    await pilot.press("l")
    assert len(app.launches) == 1


async def _watch_the_jobs_finish(app, pilot, settle, launch_log) -> None:
    """The Runs screen shows the jobs queued or running, then done; the live view of one has curves."""
    assert app.current_mode == "runs"
    table = app.screen.query_one("#jobs", JobTable)
    seen_states = set()
    deadline = time.time() + 180
    while time.time() < deadline:
        await pilot.pause(0.5)
        rows = cell_texts(table)
        seen_states |= {r[0] for r in rows}
        if len(rows) == 3 and all(r[0] == "done" for r in rows):
            break
    log = launch_log.read_text()
    assert [r[0] for r in cell_texts(table)] == ["done"] * 3, log
    assert seen_states & {"queued", "running"}, "the jobs were never shown before they finished"
    assert all(r[5] == "100%" for r in cell_texts(table))

    table.move_cursor(row=0)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, LiveScreen)
    await pilot.pause(1.0)
    await settle(pilot)
    assert app.screen.series["loss"] and app.screen.series["test_acc"]
    assert "done" in str(app.screen.query_one("#job-info", Static).render())
    await pilot.press("escape")


async def _read_results_and_history(app, pilot, settle, expected: list[dict]) -> None:
    """The Results screen agrees with `w2s results --json`; History finds jobs by model name."""
    await pilot.press("3")
    await settle(pilot)
    shown = cell_texts(app.screen.query_one("#pgr", DataTable))
    assert len(shown) == len(expected) == 1
    row = expected[0]
    assert shown[0][:7] == [
        row["weak"],
        row["strong"],
        row["method"],
        f"{row['weak_acc']:.3f}",
        f"{row['w2s_acc']:.3f}",
        f"{row['ceiling_acc']:.3f}",
        f"{row['pgr']:.2f}" + (" !" if row["warnings"] else ""),
    ]

    await pilot.press("4")
    await settle(pilot)
    history = app.screen.query_one("#jobs", JobTable)
    assert history.row_count == 3
    app.screen.query_one("#search", Input).value = "small"
    await settle(pilot)
    rows = cell_texts(history)
    assert len(rows) == 2  # the GT job of small, and small's transfer to big
    assert {r[4] for r in rows} == {"small", "big"}


# trains three tiny jobs
def test_runs_outlive_the_app_and_show_again_on_reopening(tmp_path, monkeypatch, settle):
    asyncio.run(_test_runs_outlive_the_app(tmp_path, monkeypatch, settle))


async def _test_runs_outlive_the_app(tmp_path, monkeypatch, settle):
    monkeypatch.setenv("W2S_CACHE", os.environ.get("W2S_CACHE") or str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    results = tmp_path / "results"
    app = W2SApp(results)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        launch_log = app.launches[0][1]
        await pilot.press("q")  # quit at once
    deadline = time.time() + 180
    statuses = []
    while time.time() < deadline:
        if (results / "w2s.db").is_file():
            with Store.open(results, readonly=True) as store:
                statuses = [j["status"] for j in store.jobs()]
            if len(statuses) == 3 and set(statuses) == {JobStatus.DONE}:
                break
        time.sleep(0.5)
    assert statuses == [JobStatus.DONE] * 3, launch_log.read_text()
    again = W2SApp(results)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert again.current_mode == "runs"
        assert [r[0] for r in cell_texts(again.screen.query_one("#jobs", JobTable))] == ["done"] * 3


def test_a_launch_that_fails_at_once_is_reported(tmp_path, monkeypatch, settle):
    asyncio.run(_test_a_launch_that_fails(tmp_path, monkeypatch, settle))


async def _test_a_launch_that_fails(tmp_path, monkeypatch, settle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huge.toml").write_text(TINY.replace("n_test = 40", "n_test = 100000000"))  # valid, too big to run
    app = W2SApp(tmp_path / "results")
    messages: list[str] = []
    app.notify = lambda message, **kwargs: messages.append(str(message))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        proc, log = app.launches[0]
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            await pilot.pause(0.2)
        await pilot.pause(1.5)  # the app checks its launches every second
        assert proc.returncode == 2 and any("w2s run exited with 2" in m and "n_test" in m for m in messages), messages


def test_views_of_a_filled_database_at_80x24(filled_results, settle):
    asyncio.run(_test_views_of_a_filled_database_at_80x24(filled_results.root, filled_results.hashes, settle))


async def _test_views_of_a_filled_database_at_80x24(tmp_path, hashes, settle):
    app = W2SApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.current_mode == "runs"  # a database with jobs opens on the runs
        table = app.screen.query_one("#jobs", JobTable)
        assert table.row_count == len(hashes) and table.region.height >= 10
        await pilot.press("s")  # sort by status, then by model
        await pilot.press("s")
        await settle(pilot)
        models = [r[1] for r in cell_texts(table)]
        assert models == sorted(models)
        table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, LiveScreen)
        assert [v for _, v in app.screen.series["loss"]] == pytest.approx([0.65, 0.6, 0.55, 0.5, 0.45])
        assert "finished" in "\n".join(app.screen.log_lines)
        await pilot.press("escape")
        await pilot.press("f")  # only running jobs: none here
        await settle(pilot)
        assert table.row_count == 0

        await pilot.press("4")
        await settle(pilot)
        history = app.screen.query_one("#jobs", JobTable)
        app.screen.query_one("#search", Input).value = "boot"  # bootstrap steps are "bootstrap" jobs
        await settle(pilot)
        assert history.row_count == 4
        await pilot.press("c")  # fewer than two marked: nothing to compare
        assert type(app.screen).__name__ == "HistoryScreen"
        history.focus()
        history.move_cursor(row=0)
        await pilot.press("space")
        history.move_cursor(row=1)
        await pilot.press("space")
        await pilot.press("c")
        await settle(pilot)
        assert type(app.screen).__name__ == "CompareScreen"
        assert len(app.screen.series) == 2 and all(s["test_acc"] for s in app.screen.series.values())
        await pilot.press("escape")
        for row in (0, 1):  # unmark: with marks, e exports only the marked (test_tui_issue15)
            history.move_cursor(row=row)
            await pilot.press("space")
        await pilot.press("e")
        await settle(pilot)
        exported = list((tmp_path / "exports").glob("history-*.csv"))
        assert len(exported) == 1
        lines = exported[0].read_text().splitlines()
        assert lines[0].startswith("hash,recipe,dataset") and len(lines) == 1 + 4

        await pilot.press("question_mark")
        await settle(pilot)
        help_table = app.screen.query_one("#help-table", DataTable)
        ids = {str(help_table.get_row_at(i)[3]) for i in range(help_table.row_count)}
        assert ids == known_binding_ids()


def test_keymap_remaps_a_binding_and_palette_lists_actions(filled_results, settle):
    asyncio.run(_test_keymap_remaps_a_binding_and_palette_lists_actions(filled_results.root, settle))


async def _test_keymap_remaps_a_binding_and_palette_lists_actions(results, settle):
    app = W2SApp(results, keymap={"screen.results": "x"})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")  # the default key no longer switches
        assert app.current_mode == "runs"
        commands = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Cancel job", "Results", "Sort", "Status filter"} <= commands
        await pilot.press("x")
        await settle(pilot)
        assert app.current_mode == "results"


def test_thin_keeps_first_last_and_bounds_the_points():
    from w2s_tui.widgets import thin

    points = [(i, float(i)) for i in range(1001)]
    thinned = thin(points, 100)
    assert len(thinned) <= 101 and thinned[0] == points[0] and thinned[-1] == points[-1]
    assert thin(points[:50], 100) == points[:50]


def test_a_failed_read_is_a_toast_or_shown_in_place(tmp_path, settle):
    asyncio.run(_test_a_failed_read(tmp_path, settle))


async def _test_a_failed_read(tmp_path, settle):
    """A worker's W2SError reaches the app as an error toast (Results), or the live view's info line."""
    (tmp_path / "w2s.db").write_text("this is not a database" * 100)
    app = W2SApp(tmp_path, start="results")
    toasts: list[tuple[str, str]] = []
    app.notify = lambda message, severity="information", **kwargs: toasts.append((str(message), severity))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert any(severity == "error" and "damaged" in text for text, severity in toasts), toasts
        toasts.clear()
        await app.push_screen(LiveScreen("ab" * 32))
        await settle(pilot)
        assert "damaged" in str(app.screen.query_one("#job-info", Static).render())
        assert toasts == []  # shown in place, not as a toast every tick
