"""Small things a daily user meets (issue 13, item 6): a recipe named on the command line by its file
(edited since, typed from another folder) or its name (with `.toml`, or its file's name); the Recipes
screen naming each file by its short path; `end` in a job list reaching the real last row."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from conftest import insert_job
from tui_helpers import tiny_recipe

from w2s_core import cli
from w2s_core.cli.targets import recipe_hashes, select_jobs
from w2s_core.errors import InputError
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.store import queries as browse
from w2s_tui.app import W2SApp
from w2s_tui.screens.recipes import short_path
from w2s_tui.widgets import JobTable


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder whose recipes/demo.toml (named "paper-demo" inside) ran once: its recipe is
    recorded with the file's absolute path, as `w2s run` records it, and one queued job."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "proj"
    (folder / "recipes").mkdir(parents=True)
    path = folder / "recipes" / "demo.toml"
    path.write_text(tiny_recipe("paper-demo"))
    recipe = load_recipe(path)
    root = tmp_path / "results"
    with Store.open(root) as store:
        store.add_recipe("o" * 64, "other", str(tmp_path / "other.toml"), "name = 'other'")
        store.add_recipe(recipe.hash, recipe.name, str(path.resolve()), path.read_text())
        insert_job(store, "ab" * 32, "gt", "small", 0, {"role": "gt", "model": "small", "seed": 0}, recipe.hash, {})
        store.set_job_status("ab" * 32, JobStatus.QUEUED)
    monkeypatch.chdir(folder)
    return folder, root, recipe.hash


def resolve(root: Path, target: str) -> list[str]:
    with Store.open(root, readonly=True) as store:
        return recipe_hashes(store, target, every=False)


@pytest.mark.parametrize(
    "target", ["recipes/demo.toml", "./recipes/../recipes/demo.toml", "paper-demo", "paper-demo.toml", "demo"]
)
def test_a_recipe_is_found_by_its_file_or_its_name(project, target):
    _, root, recipe_hash = project
    assert resolve(root, target) == [recipe_hash]


def test_a_file_edited_since_it_ran_still_names_its_recipe(project):
    folder, root, recipe_hash = project
    path = folder / "recipes" / "demo.toml"
    path.write_text(path.read_text().replace("epochs = 1", "epochs = 2"))
    assert load_recipe(path).hash != recipe_hash
    assert resolve(root, "recipes/demo.toml") == [recipe_hash]
    path.write_text("this is no longer TOML [")  # broken mid-edit: still the file it ran from
    assert resolve(root, "recipes/demo.toml") == [recipe_hash]


def test_a_relative_path_typed_from_another_folder(project, monkeypatch):
    folder, root, recipe_hash = project
    monkeypatch.chdir(folder.parent)  # recipes/demo.toml is not here: the stored path ends with it
    assert not Path("recipes/demo.toml").exists()
    assert resolve(root, "recipes/demo.toml") == [recipe_hash]
    assert resolve(root, "proj/recipes/demo.toml") == [recipe_hash]


def test_cancel_and_results_take_the_file_name_and_misses_list_the_known_recipes(project, capsys):
    _, root, _ = project
    with Store.open(root, readonly=True) as store:
        assert [j["hash"] for j in select_jobs(store, "demo", {JobStatus.QUEUED}, "cancel")] == ["ab" * 32]
        with pytest.raises(InputError, match="not a job hash prefix") as miss:
            select_jobs(store, "nosuch", {JobStatus.QUEUED}, "cancel")
    assert "known recipes: other, paper-demo" in str(miss.value)
    assert cli.main(["--results-dir", str(root), "results", "recipes/demo.toml", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # found; nothing finished yet
    assert cli.main(["--results-dir", str(root), "results", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "known recipes: other, paper-demo" in err and "w2s run nosuch" in err


# -- the Recipes screen -----------------------------------------------------------------------------


def test_short_path_is_relative_to_here_else_home_else_the_name(tmp_path):
    here, home = tmp_path / "home" / "proj", tmp_path / "home"
    assert short_path(here / "recipes" / "a.toml", cwd=here, home=home) == "recipes/a.toml"
    assert short_path(home / "other" / "b.toml", cwd=here, home=home) == "~/other/b.toml"
    assert short_path(tmp_path / "elsewhere" / "c.toml", cwd=here, home=home) == "c.toml"


def test_the_preview_names_the_file_and_the_tooltip_gives_its_full_path(tmp_path, monkeypatch, settle):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "recipes").mkdir()
    long_name = "a-long-recipe-name-that-would-wrap-in-thirty-columns.toml"
    (tmp_path / "recipes" / long_name).write_text(tiny_recipe("long"))
    monkeypatch.setattr(cli, "DEFAULT_RECIPE", tmp_path / "recipes" / long_name)

    async def body():
        app = W2SApp(tmp_path / "results", start="recipes")
        async with app.run_test(size=(120, 24)) as pilot:
            await settle(pilot)
            preview = str(app.screen.query_one("#preview").render())
            assert preview.splitlines()[0] == f"recipes/{long_name}", preview
            assert app.screen.query_one("#recipe-list").tooltip == str((tmp_path / "recipes" / long_name).resolve())

    asyncio.run(body())


# -- `end` in a job list ----------------------------------------------------------------------------

ROWS = 600  # several windows of the virtual table (a window is the view plus 2 × 50 rows)


@pytest.fixture
def many_jobs(tmp_path):
    with Store.open(tmp_path) as store, store.transaction():
        store.add_recipe("r" * 64, "many", "many.toml", "name = 'many'")
        for n in range(ROWS):
            h = f"{n:04d}" + "e" * 60
            insert_job(store, h, "gt", "m", 0, {"role": "gt", "model": "m", "seed": 0}, "r" * 64, {})
            store.set_job_status(h, JobStatus.DONE, started_at=1_700_000_000.0 + n)
    return tmp_path


@pytest.mark.parametrize("early", [False, True], ids=["after-the-first-window", "before-the-first-window"])
def test_end_reaches_the_real_last_row(many_jobs, settle, monkeypatch, early):
    """`end` moves to the last of all the jobs (the oldest, sorted by recent), loads its window and shows
    it; also when pressed before the first window arrived (the reader is held until then)."""
    gate = threading.Event()
    read = browse.job_rows

    def held(*args, **kwargs):
        gate.wait(10)
        return read(*args, **kwargs)

    monkeypatch.setattr(browse, "job_rows", held)
    if not early:
        gate.set()

    async def body():
        app = W2SApp(many_jobs)
        async with app.run_test(size=(100, 24)) as pilot:
            if not early:
                await settle(pilot)
            table = app.screen.query_one(JobTable)
            assert early or len(table.window) < ROWS  # the last row is not loaded yet
            await pilot.press("end")
            gate.set()
            await settle(pilot)
            await settle(pilot)
            last = "0000" + "e" * 60  # the oldest job
            assert table.row_count == ROWS and table.cursor_row == ROWS - 1
            assert app.screen.current()["hash"] == last
            assert table.scroll_y == table.max_scroll_y > 0  # the view went down with the cursor
            assert "0000eeeeee" in table.get_row_at(ROWS - 1)

    asyncio.run(body())
