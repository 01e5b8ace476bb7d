"""Snapshots of the Results screen (PGR table, weak×strong grids, chain) on a database the test fills.
Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`."""

from __future__ import annotations

from w2s_tui.app import W2SApp

from test_tui_support import fill


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_results_table_snapshot(tmp_path, snap_compare):
    fill(tmp_path)
    assert snap_compare(W2SApp(tmp_path, start="results"), terminal_size=(100, 24), run_before=settle)


def test_pgr_grid_snapshot(tmp_path, snap_compare):
    fill(tmp_path)
    assert snap_compare(W2SApp(tmp_path, start="results"), terminal_size=(100, 64), run_before=settle)


def test_auroc_switch_snapshot(tmp_path, snap_compare):
    fill(tmp_path)

    async def auroc(pilot) -> None:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)

    assert snap_compare(W2SApp(tmp_path, start="results"), terminal_size=(100, 24), run_before=auroc)
