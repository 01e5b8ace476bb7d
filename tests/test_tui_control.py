"""Launch and cancel from the TUI: what is refused, and the process-group fallback when the core
has no `w2s cancel` (a sleeping process stands in for a training job)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from w2s_core.errors import W2SError
from w2s_core.store import Store
from w2s_tui import control
from w2s_tui.app import W2SApp

from test_tui_support import fill


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_only_queued_or_running_jobs_can_be_cancelled(tmp_path):
    with pytest.raises(W2SError, match="is done; only queued or running"):
        control.cancel({"hash": "a" * 64, "status": "done", "pid": None}, tmp_path)


def test_without_a_cancel_command_the_process_group_is_terminated(tmp_path, monkeypatch, sleeper):
    monkeypatch.setattr(control, "_subcommand", lambda name: None)
    with pytest.raises(W2SError, match="has not started"):
        control.cancel({"hash": "a" * 64, "status": "queued", "pid": None}, tmp_path)
    done = control.cancel({"hash": "a" * 64, "status": "running", "pid": sleeper.pid}, tmp_path)
    assert "SIGTERM" in done and sleeper.wait(5) == -15
    with pytest.raises(W2SError, match="already gone"):
        control.cancel({"hash": "a" * 64, "status": "running", "pid": sleeper.pid}, tmp_path)


def test_runs_screen_cancels_on_the_second_press(tmp_path, monkeypatch, sleeper):
    monkeypatch.setattr(control, "_subcommand", lambda name: None)
    hashes = fill(tmp_path)
    with Store.open(tmp_path) as store:
        store.set_job_status(hashes["gt m-big s1"], "running", pid=sleeper.pid, started_at=2e9)  # newest: row 0

    async def body() -> None:
        app = W2SApp(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen.current()["hash"] == hashes["gt m-big s1"]
            await pilot.press("c")
            await app.workers.wait_for_complete()
            assert sleeper.poll() is None  # one press only arms the cancel
            await pilot.press("c")
            await app.workers.wait_for_complete()
            assert sleeper.wait(5) == -15

    asyncio.run(body())
