"""Cancel from the TUI: what is refused, and a running job's process killed through `w2s cancel`
(a sleeping process in its own session stands in for a training job)."""

from __future__ import annotations

import asyncio
import subprocess

import psutil
import pytest

from w2s_core.errors import W2SError
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_tui import control
from w2s_tui.app import W2SApp


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_only_queued_or_running_jobs_can_be_cancelled(tmp_path):
    with pytest.raises(W2SError, match="is done; only queued or running"):
        control.cancel({"hash": "a" * 64, "status": JobStatus.DONE, "pid": None}, tmp_path)


def running(results, job_hash: str, proc: subprocess.Popen) -> None:
    """Record `proc` as the job's process, as the supervisor does when it starts a job."""
    with Store.open(results) as store:
        store.set_job_status(
            job_hash,
            JobStatus.RUNNING,
            pid=proc.pid,
            pgid=proc.pid,
            proc_start=psutil.Process(proc.pid).create_time(),
            started_at=2e9,
        )  # newest: row 0


def test_cancel_kills_a_running_job_and_dequeues_a_queued_one(filled_results, sleeper):
    tmp_path, hashes = filled_results.root, filled_results.hashes
    running(tmp_path, hashes["gt m-big s1"], sleeper)
    with Store.open(tmp_path) as store:
        store.set_job_status(hashes["gt m-mid s1"], JobStatus.QUEUED)
        jobs = {h: store.get_job(h) for h in (hashes["gt m-big s1"], hashes["gt m-mid s1"])}
    for job in jobs.values():
        assert control.cancel(job, tmp_path) == f"cancelled {job['hash'][:10]}"
    assert sleeper.wait(5) == -15
    with Store.open(tmp_path, readonly=True) as store:
        assert {store.get_job(h)["status"] for h in jobs} == {"cancelled"}
    with pytest.raises(W2SError, match="failed: .*Nothing to cancel"):  # the core refuses it now
        control.cancel({**jobs[hashes["gt m-mid s1"]], "status": JobStatus.QUEUED}, tmp_path)


def test_runs_screen_cancels_on_the_second_press(filled_results, sleeper, settle):
    hashes = filled_results.hashes
    running(filled_results.root, hashes["gt m-big s1"], sleeper)

    async def body() -> None:
        app = W2SApp(filled_results.root)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.screen.current()["hash"] == hashes["gt m-big s1"]
            await pilot.press("c")
            await app.workers.wait_for_complete()
            assert sleeper.poll() is None  # one press only arms the cancel
            await pilot.press("c")
            await app.workers.wait_for_complete()
            assert sleeper.wait(5) == -15

    asyncio.run(body())
