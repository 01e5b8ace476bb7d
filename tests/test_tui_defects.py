"""The defects of issue 15, each driven through Textual's Pilot and read off the screen as a user
sees it (tests/tui_helpers.screen_text). Each of these failed on the code before the fix (run
against a copy of that w2s_tui); the test says what the old code showed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tui_helpers import TINY, add_job, append_events, line_with, screen_text

from w2s_core import cli
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_tui import control
from w2s_tui.app import W2SApp


def run(body) -> None:
    asyncio.run(body())


@pytest.fixture
def recipes_here(tmp_path, monkeypatch):
    """tmp_path as the working directory, hub offline, the bundled recipes out of the list."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(cli, "DEFAULT_RECIPE", tmp_path / "recipes" / "none.toml")
    return tmp_path


# 1. Runs: a running job's elapsed clock stood still (the row diff compared cells computed at one `now`).
def test_a_running_jobs_clock_moves(tmp_path, settle):
    add_job(tmp_path, 1, started_at=time.time() - 100)

    async def body():
        app = W2SApp(tmp_path)
        async with app.run_test(size=(160, 20)) as pilot:
            await settle(pilot)
            before = line_with(screen_text(app), " running ")
            await pilot.pause(2.3)  # two refreshes of the Runs screen
            await settle(pilot)
            assert line_with(screen_text(app), " running ") != before  # old: "1:40" for ~25 s

    run(body)


# 2. Runs: cells were cut when values grew (columns kept the width of the first load).
def test_cells_are_not_cut_when_values_grow(tmp_path, settle):
    h = add_job(tmp_path, 1, events=[{"step": 1, "examples": 50, "examples_per_s": 10.0, "loss": 0.5}])

    async def body():
        app = W2SApp(tmp_path)
        async with app.run_test(size=(160, 20)) as pilot:
            await settle(pilot)
            assert "0:05" in line_with(screen_text(app), " running ")  # 50 of 100 examples left at 10/s
            append_events(tmp_path, h, [{"step": 2, "examples": 50, "examples_per_s": 0.05, "loss": 12.5}])
            await pilot.pause(1.3)
            await settle(pilot)
            row = line_with(screen_text(app), " running ")
            assert "16:40" in row and "12.500" in row, row  # old: "16:4"

    run(body)


def mark_plan_done(results: Path, recipe: Path) -> int:
    """Record every job of the recipe's plan as done, as a finished run leaves them; returns how many."""
    from w2s_core.spec.plan import build_plan
    from w2s_core.spec.recipe import load_recipe

    plan = build_plan(load_recipe(recipe))
    with Store.open(results) as store:
        for job in plan.jobs:
            store.upsert_job(
                {"hash": job.key, "kind": job.kind, "model": job.model, "seed": job.seed, "spec": dict(job.spec)}
            )
            store.set_job_status(job.key, JobStatus.DONE)
    return len(plan.jobs)


# 3. Recipes: the plan preview went stale after a run finished, and `l` launched a run with nothing to do.
def test_preview_follows_the_database_and_nothing_to_run_is_said(recipes_here, monkeypatch, settle):
    (recipes_here / "tiny.toml").write_text(TINY)
    launched: list = []
    monkeypatch.setattr(control, "launch", lambda path, results: launched.append(path))
    toasts: list[str] = []

    async def body():
        app = W2SApp(recipes_here / "results")
        app.notify = lambda message, **kwargs: toasts.append(str(message))
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            assert "3 jobs · 0 cached · 3 to run" in screen_text(app)
            assert mark_plan_done(recipes_here / "results", recipes_here / "tiny.toml") == 3  # the run finished
            await pilot.pause(2.5)  # the screen checks the database every 2 s
            await settle(pilot)
            assert "3 jobs · 3 cached · 0 to run" in screen_text(app)  # old: still "0 cached · 3 to run"
            await pilot.press("l")
            await settle(pilot)
            assert launched == [] and any("nothing to run" in t for t in toasts), toasts

    run(body)


MISSING_COLUMN = TINY.replace('name = "synthetic"', 'path = "data.jsonl"').replace("seed = 0\n", "")


def write_data_without_label(folder: Path) -> None:
    (folder / "data.jsonl").write_text("".join(f'{{"text": "item {i}", "answer": {i % 2}}}\n' for i in range(300)))


def flat_text(app) -> str:
    """The screen's words on one line, without the borders of toasts and panels, so a message reads the
    same however it wraps (a longer path wraps it elsewhere: a border glyph would split its words)."""
    text = screen_text(app)
    for glyph in "▌▎▊│┃":
        text = text.replace(glyph, " ")
    return " ".join(text.split())


# 4 and 6. Markup ate bracketed text ("the recipe's  table" for "[data]"); a launch that failed at
# submission left only a 5-second toast.
def test_a_failed_launch_is_kept_on_recipes_with_its_brackets(recipes_here, settle):
    (recipes_here / "missing.toml").write_text(MISSING_COLUMN)  # valid, but the data has no `label`
    write_data_without_label(recipes_here)

    async def body():
        app = W2SApp(recipes_here / "results")
        async with app.run_test(size=(120, 30), notifications=True) as pilot:  # toasts on, as in a terminal
            await settle(pilot)
            await pilot.press("l")
            proc, _ = app.launches[0]
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                await pilot.pause(0.2)
            await pilot.pause(1.5)  # the app checks its launches every second
            await settle(pilot)
            assert proc.returncode == 2
            assert "the recipe's [data] table" in flat_text(app)  # old: "recipe's  table"
            await pilot.press("1")
            app.clear_notifications()
            deadline = time.time() + 15  # a loaded machine may take a while to switch screens and render
            while True:
                await pilot.pause(0.5)
                await settle(pilot)
                shown = flat_text(app)
                if "no column 'label'" in shown or time.time() > deadline:
                    break
            assert "no column 'label'" in shown and "[data]" in shown  # old: gone with the toast
            await pilot.press("x")
            await settle(pilot)
            assert "no column 'label'" not in screen_text(app)

    run(body)


def test_names_with_brackets_show_as_written(recipes_here, tmp_path, settle):
    (recipes_here / "tiny.toml").write_text(TINY.replace('name = "tiny"', 'name = "[[bootstrap]] tiny"'))
    add_job(tmp_path / "results", 1, model="[b]big[/b]")

    async def body():
        app = W2SApp(tmp_path / "results", start="recipes")
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(pilot)
            assert "[[bootstrap]] tiny" in screen_text(app)  # old: "[\[bootstrap]] tiny"
            await pilot.press("2")
            await settle(pilot)
            assert "[b]big[/b]" in screen_text(app)  # old: "big"

    run(body)


# 5. A keymap conflict was accepted silently ("runs.cancel" = "f" hid the status filter).
def test_a_keymap_conflict_is_refused_with_both_ids(tmp_path, capsys):
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('[keymap]\n"runs.cancel" = "f"\n')
    code = cli.main(["tui", str(tmp_path), "--keymap", str(keymap)])
    err = capsys.readouterr().err
    assert code == 2 and "runs.cancel" in err and "runs.status" in err and '"f"' in err, err
    keymap.write_text('[keymap]\n"runs.cancel" = "f"\n"runs.status" = "c"\n')  # a swap is no conflict
    code = cli.main(["tui", str(tmp_path), "--keymap", str(keymap)])
    assert code == 2 and "needs a terminal" in capsys.readouterr().err  # got past the keymap


# 6. A failed job's live view showed empty plots and a clipped error line.
def test_a_failed_jobs_live_view_says_no_data_and_the_whole_error(tmp_path, settle):
    error = (
        "the trainer ran out of memory while loading the model weights; lower [train] batch_size or "
        "minibatch_size, or pick a smaller model, then `w2s retry` this job (see the log for the traceback) END"
    )
    add_job(tmp_path, 1, status=JobStatus.FAILED, error=error)

    async def body():
        app = W2SApp(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            await pilot.pause(0.6)
            await settle(pilot)
            shown = " ".join(screen_text(app).split())
            assert "no data" in shown  # old: empty axes
            assert "[train] batch_size" in shown and "traceback) END" in shown  # old: no error at all

    run(body)


# 7. Results hid what is missing.
def set_status(results: Path, hashes, status: str) -> None:
    with Store.open(results) as store:
        for h in hashes:
            store.set_job_status(h, status)


def test_results_say_which_pairs_are_missing_and_why(filled_results, settle):
    hashes = filled_results.hashes
    set_status(filled_results.root, [hashes["gt m-big s0"], hashes["gt m-big s1"]], JobStatus.FAILED)

    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(pilot)
            shown = screen_text(app)
            assert "2 of 22 jobs not done: 2 failed" in shown  # old: the pairs just vanished
            assert "m-small→m-big xent: not in the table: ceiling m-big failed (s0, s1)" in shown

    run(body)


def test_results_of_a_recipe_with_only_failures_say_so(filled_results, settle):
    set_status(filled_results.root, filled_results.hashes.values(), JobStatus.FAILED)

    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert "22 of 22 jobs not done: 22 failed" in screen_text(app)  # old: a bare header

    run(body)


def test_auroc_mode_keeps_the_accuracy_noise_floor_warning(filled_results, settle):
    hashes = filled_results.hashes
    with Store.open(filled_results.root) as store:  # m-mid's GT accuracy 0.012 above m-small's
        for seed in (0, 1):
            store.set_results(hashes[f"gt m-mid s{seed}"], {"test_acc": 0.612, "test_auroc": 0.9, "n_test": 1000})

    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(160, 60)) as pilot:
            await settle(pilot)
            await pilot.press("m")
            await settle(pilot)
            shown = screen_text(app)
            assert "auroc" in line_with(shown, "recipe grid-demo")
            row = line_with(shown, "m-small  m-mid ")
            assert "!" in row, row  # old: no "!" in AUROC mode
            assert "(accuracy) The gap between ceiling (0.612) and weak (0.600) is 0.012" in shown

    run(body)


# 8. The palette covered only the current screen, listed "Cursor up … id None" and two "Quit"s.
def test_the_palette_covers_every_screen_and_help_names_the_keymap_file(filled_results, settle):
    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            commands = list(app.get_system_commands(app.screen))
            titles = [c.title for c in commands]
            assert titles.count("Quit") == 1 and not any("None" in c.help for c in commands), titles
            assert {"Acc/AUROC", "Runs: Sort", "History: Export CSV", "Recipes: Launch"} <= set(titles), titles
            sort = next(c for c in commands if c.title == "Runs: Sort")
            await sort.callback()
            await settle(pilot)
            assert app.current_mode == "runs" and app.screen.sort == "status"
            await pilot.press("question_mark")
            await settle(pilot)
            shown = " ".join(screen_text(app).split())
            assert "~/.config/w2s/keymap.toml" in shown and "[keymap]" in shown, shown

    run(body)
