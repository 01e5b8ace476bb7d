"""Snapshots of every screen (Recipes, Runs, Live, Results, History and Compare, Help) and the GPU panel at 80×24 and
160×48, grouped by feature, on the fixed database of `conftest.fill`.

Deterministic by construction: the database's times are fixed and shown in UTC, every job is
finished (no clock runs), the recipes come from a fixed folder shown by relative path, and nothing
spins. Update after an intended change with `pytest tests/test_snapshots.py --snapshot-update`,
then look at the SVGs it wrote.
"""

from __future__ import annotations

import os
import time

import pytest
from tui_helpers import tiny_recipe

from w2s_core import cli
from w2s_core.store import Store
from w2s_tui.app import W2SApp

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])

RECIPE = tiny_recipe("snap-tiny")


@pytest.fixture
def utc():
    """Local time is UTC while the test runs, so the History screen's start times read the same anywhere."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def filled_app(filled_results, utc, monkeypatch):
    """A factory of apps on the filled database, opening on the given screen. The results folder is
    the home folder, so the header names it "~" wherever pytest put it."""
    monkeypatch.setenv("HOME", str(filled_results.root))
    return lambda start=None: W2SApp(filled_results.root, start=start)


def keys_then_settle(settle, *keys: str):
    """A run_before that settles, presses `keys` one by one (settling after each), and settles."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


class TestRecipes:
    @pytest.fixture
    def recipes_app(self, tmp_path, monkeypatch):
        """The Recipes screen on a fixed folder: one valid recipe (highlighted, its plan previewed)
        and one with a misspelt key; the bundled recipes are pointed at the same folder."""
        folder = tmp_path / "recipes"
        folder.mkdir()
        (folder / "a-tiny.toml").write_text(RECIPE)
        (folder / "b-broken.toml").write_text(RECIPE.replace("epochs = 1", "epochz = 1"))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HOME", str(tmp_path))  # the results folder reads "~/results" wherever tmp_path is
        monkeypatch.setattr(cli, "DEFAULT_RECIPE", folder / "a-tiny.toml")
        return W2SApp(tmp_path / "results")

    @SIZES
    def test_plan_preview(self, recipes_app, size, snap_compare, settle):
        assert snap_compare(recipes_app, terminal_size=size, run_before=keys_then_settle(settle))


class TestRuns:
    @SIZES
    def test_job_table(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app(), terminal_size=size, run_before=keys_then_settle(settle))


class TestLive:
    @SIZES
    def test_curves_and_log_of_a_finished_job(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app("runs"), terminal_size=size, run_before=keys_then_settle(settle, "enter"))


class TestResults:
    @SIZES
    def test_pgr_table_and_grids(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app("results"), terminal_size=size, run_before=keys_then_settle(settle))

    def test_results_table(self, filled_app, snap_compare, settle):
        assert snap_compare(filled_app("results"), terminal_size=(100, 24), run_before=keys_then_settle(settle))

    def test_pgr_grid(self, filled_app, snap_compare, settle):
        assert snap_compare(filled_app("results"), terminal_size=(100, 64), run_before=keys_then_settle(settle))

    def test_auroc_switch(self, filled_app, snap_compare, settle):
        assert snap_compare(filled_app("results"), terminal_size=(100, 24), run_before=keys_then_settle(settle, "m"))

    @SIZES
    def test_final_selected_oracle_view(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app("results"), terminal_size=size, run_before=keys_then_settle(settle, "v"))


class TestHistory:
    @SIZES
    def test_every_job(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app("history"), terminal_size=size, run_before=keys_then_settle(settle))

    @SIZES
    def test_two_marked_jobs_compared(self, filled_app, size, snap_compare, settle):
        run_before = keys_then_settle(settle, "space", "down", "space", "c")
        assert snap_compare(filled_app("history"), terminal_size=size, run_before=run_before)


class TestGpuPanel:
    """The GPU panel with two fake GPUs (one holding a job's memory, one without power readings), sampled
    at a fixed time long past, so it says "not sampled since" that time (UTC)."""

    @pytest.fixture
    def gpu_app(self, filled_results, filled_app):
        h = filled_results.hashes["m-small to m-big xent s0"]
        gpu = {"name": "NVIDIA H100 80GB HBM3", "mem_total_mb": 81559.0, "temp_c": 64.0, "power_w": 312.5}
        with Store.open(filled_results.root) as store:
            store.record_gpu_sample(
                1_700_000_030.0,
                [
                    {**gpu, "gpu": 0, "util_pct": 87.0, "mem_used_mb": 41000.0},
                    {**gpu, "gpu": 1, "util_pct": 3.0, "mem_used_mb": 600.0, "temp_c": 35.0, "power_w": None},
                ],
                [{"job_hash": h, "gpu": 0, "mem_mb": 40000.0, "util_pct": 87.0}],
            )
        return filled_app

    @SIZES
    def test_runs_with_two_gpus(self, gpu_app, size, snap_compare, settle):
        assert snap_compare(gpu_app(), terminal_size=size, run_before=keys_then_settle(settle))


class TestHelp:
    @SIZES
    def test_every_binding(self, filled_app, size, snap_compare, settle):
        assert snap_compare(filled_app(), terminal_size=size, run_before=keys_then_settle(settle, "question_mark"))
