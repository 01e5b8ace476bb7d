"""The GPU monitor (issue 11): NVML reads, `w2s gpus`, the supervisor's samples, History's peak, the GPU panel.

No test needs a GPU: a fake NVML (tests/fake_nvml/pynvml.py) stands in at the import boundary, passed
as `nvml=`, put in `sys.modules["pynvml"]`, or first on PYTHONPATH for a CLI subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, poll_until
from fake_nvml.pynvml import DEFAULT_GPUS, FakeNvml
from test_supervision import fake, recipe, submit  # noqa: F401 (fake is a fixture)
from tui_helpers import add_job, line_with, screen_text

from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.store import queries as browse
from w2s_core.supervision import nvml, runner, sampling, supervisor
from w2s_core.supervision.slots import Slot
from w2s_tui.app import W2SApp
from w2s_tui.screens.live import LiveScreen
from w2s_tui.widgets.gpu_panel import GpuPanel, panel_text

FAKE_DIR = ROOT / "tests" / "fake_nvml"


def gpu_row(gpu: int, util: float | None = 87.0, used: float = 41000.0) -> dict:
    return {
        "gpu": gpu,
        "name": "NVIDIA H100 80GB HBM3",
        "util_pct": util,
        "mem_used_mb": used,
        "mem_total_mb": 81559.0,
        "temp_c": 64.0,
        "power_w": 312.5,
    }


# -- nvml.read_gpus


def test_read_gpus_reads_every_figure_and_each_process_memory():
    fake_nvml = FakeNvml()
    gpus = nvml.read_gpus(fake_nvml)
    assert [g.index for g in gpus] == [0, 1]
    first = gpus[0]
    assert first.name == "NVIDIA H100 80GB HBM3" and first.uuid == "GPU-fake-0000"  # bytes name decoded
    assert (first.util_pct, first.temp_c, first.power_w) == (87.0, 64.0, 312.5)
    assert (first.mem_used_mb, first.mem_total_mb, first.mem_free_mb) == (41000.0, 81559.0, 40559.0)
    # a process NVML reports without usedGpuMemory counts 0
    assert [(p.pid, p.used_mb) for p in first.processes] == [(4242, 40000.0), (4343, 0.0)]
    assert fake_nvml.inits == fake_nvml.shutdowns == 1
    assert nvml.nvml_problem(fake_nvml) is None


def test_a_gpu_that_cannot_report_a_figure_is_still_listed():
    gpus = [dict(DEFAULT_GPUS[0], fail=["power", "temp", "util"]), dict(DEFAULT_GPUS[1], fail=["handle"])]
    fake_nvml = FakeNvml(gpus)
    first, second = nvml.read_gpus(fake_nvml)
    assert (first.power_w, first.temp_c, first.util_pct) == (None, None, None)
    assert first.mem_used_mb == 41000.0 and len(first.processes) == 2
    # no handle: listed, with no memory to place anything in
    assert second.index == 1 and "unreadable" in second.name and second.mem_free_mb == 0.0
    assert fake_nvml.shutdowns == 1


def test_nvml_missing_or_broken_is_none_with_a_reason(monkeypatch):
    no_driver = FakeNvml(None)
    assert nvml.read_gpus(no_driver) is None
    assert "NVML Shared Library Not Found" in nvml.nvml_problem(no_driver)

    class CountFails(FakeNvml):
        def nvmlDeviceGetCount(self):
            raise self.NVMLError(999, "Unknown Error")

    broken = CountFails()
    assert nvml.read_gpus(broken) is None and "count" in nvml.nvml_problem(broken)
    assert broken.shutdowns == broken.inits == 2  # NVML is shut down even when a query fails

    monkeypatch.setitem(sys.modules, "pynvml", None)  # the bindings are not installed
    assert nvml.read_gpus() is None and "nvidia-ml-py" in nvml.nvml_problem()


# -- w2s gpus


def fake_cli(results: Path, *args: str, gpus: list | str) -> subprocess.CompletedProcess:
    """`w2s gpus` in a subprocess that imports the fake pynvml describing `gpus` ("missing": no driver)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_DIR), os.environ.get("PYTHONPATH")])),
        "FAKE_NVML": gpus if isinstance(gpus, str) else json.dumps(gpus),
    }
    cmd = [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), "gpus", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


@pytest.fixture
def running_job(tmp_path):
    """A running job whose process tree (sh, then sleep in its group) is real: (results, hash, sleep's pid)."""
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    child = poll_until(lambda: psutil.Process(proc.pid).children(), 10, "sleep to start")[0]
    results = tmp_path / "res"
    h = add_job(results, 1, status=JobStatus.RUNNING, kind="transfer", model="m-big", weak="m-small", loss="xent")
    with Store.open(results) as store:
        store.set_job_status(
            h, JobStatus.RUNNING, pid=proc.pid, pgid=proc.pid, proc_start=psutil.Process(proc.pid).create_time()
        )
    yield results, h, child.pid
    os.killpg(proc.pid, 9)
    proc.wait()


def test_w2s_gpus_names_the_job_holding_memory_in_text_and_json(running_job):
    results, h, pid = running_job
    gpus = [dict(DEFAULT_GPUS[0], processes=[[pid, 12288], [os.getpid(), 512]]), DEFAULT_GPUS[1]]
    out = fake_cli(results, gpus=gpus)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "87%" in line_with(text, "NVIDIA H100") and "40.0 /  79.6 GiB" in text and "312 W" in text
    assert f"job {h[:10]} m-big transfer" in line_with(text, f"pid {pid} ")
    assert "12.0 GiB" in line_with(text, f"pid {pid} ") and "sleep" in line_with(text, f"pid {pid} ")
    assert "not a w2s job" in line_with(text, f"pid {os.getpid()} ")
    assert line_with(text, "  1  NVIDIA").rstrip().endswith("-")  # GPU 1 cannot report power

    out = fake_cli(results, "--json", gpus=gpus)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["problem"] is None and [g["index"] for g in data["gpus"]] == [0, 1]
    first = data["gpus"][0]
    assert first["mem_free_mb"] == 81559 - 41000 and first["power_w"] == 312.5 and data["gpus"][1]["power_w"] is None
    procs = {p["pid"]: p for p in first["processes"]}
    assert procs[pid]["job"] == {"hash": h, "model": "m-big", "kind": "transfer"}
    assert procs[pid]["used_mb"] == 12288 and procs[os.getpid()]["job"] is None


def test_w2s_gpus_without_a_driver_says_so_in_one_line_and_exits_0(tmp_path):
    out = fake_cli(tmp_path, gpus="missing")
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.splitlines() == [
        "no NVIDIA GPU: NVML cannot start (NVML Shared Library Not Found): is the NVIDIA driver installed?"
    ]
    out = fake_cli(tmp_path, "--json", gpus="missing")
    assert out.returncode == 0 and json.loads(out.stdout)["gpus"] == []
    assert "Shared Library Not Found" in json.loads(out.stdout)["problem"]


# -- the supervisor's samples


def test_the_supervisor_samples_gpus_and_maps_each_jobs_processes(tmp_path, fake, monkeypatch):  # noqa: F811
    root = tmp_path / "res"
    stranger = os.getpid()  # holds memory, belongs to no job

    def procs(on_gpu: int) -> list:
        """Every job's trainer holds 2000 MiB on GPU 0, its launcher 100 MiB on GPU 1 (from the trees
        the stand-in trainer writes), and a stranger 500 MiB on GPU 0."""
        trees = [json.loads(p.read_text()) for p in root.glob("jobs/*/tree.json")]
        if on_gpu == 0:
            return [[tree[1], 2000] for tree in trees] + [[stranger, 500]]
        return [[tree[0], 100] for tree in trees]

    gpus = [dict(DEFAULT_GPUS[0], processes=lambda: procs(0)), dict(DEFAULT_GPUS[1], processes=lambda: procs(1))]
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(gpus))
    monkeypatch.setattr(sampling, "GPU_SAMPLE_S", 0.05)
    monkeypatch.setattr(runner, "POLL_S", 0.05)
    monkeypatch.setenv("FAKE_EVENTS", "15")
    submit(root, recipe(tmp_path))  # 2 GT jobs, then a transfer
    assert supervisor.serve(root, [Slot("cpu", {"CUDA_VISIBLE_DEVICES": ""})], echo=lambda m: None)

    with Store.open(root, readonly=True) as store:
        jobs = store.jobs()
        assert len(jobs) == 3 and all(j["status"] == "done" for j in jobs)
        per_gpu = store.db.execute("SELECT gpu, util_pct, mem_used_mb FROM gpu_samples").fetchall()
        assert {g for g, _, _ in per_gpu} == {0, 1} and len(per_gpu) >= 2 * 10
        assert (0, 87.0, 41000.0) in per_gpu and (1, 3.0, 600.0) in per_gpu
        held = store.db.execute("SELECT job_hash, gpu, mem_mb, util_pct FROM gpu_job_samples").fetchall()
        # the stranger's 500 MiB is never counted to a job
        assert {(g, mb, u) for _, g, mb, u in held} == {(0, 2000.0, 87.0), (1, 100.0, 3.0)}
        for job in jobs:
            stats = store.gpu_job_stats(job["hash"])
            assert stats is not None and stats["samples"] >= 1, job["hash"]
            assert stats["since"] == job["started_at"]
            # both GPUs' memory at once: the trainer is seen from the first sample of its launcher on
            # (a sample taken before the trainer was seen counts only the launcher's GPU: util 3%)
            assert stats["peak_mb"] == 2100.0 and 3.0 <= stats["util_mean"] <= 45.0
        rows = {r["hash"]: r for r in browse.job_rows(store)}
        assert {r["gpu_peak_mb"] for r in rows.values()} == {2100.0}


def test_without_nvml_the_supervisor_looks_once_then_never_again(tmp_path):
    class Counting(FakeNvml):
        tries = 0

        def nvmlInit(self):
            type(self).tries += 1
            super().nvmlInit()

    with Store.open(tmp_path) as store:
        sampler = sampling.GpuSampler(store, every_s=0.0, nvml=Counting(None))
        for _ in range(5):
            sampler.tick({})
        assert Counting.tries == 1 and sampler.enabled is False
        assert store.latest_gpus() is None and sampler.latest is None

        with_gpus = Counting()
        sampler = sampling.GpuSampler(store, every_s=3600.0, nvml=with_gpus)
        for _ in range(3):  # one sample, then none until every_s has passed
            sampler.tick({})
        assert with_gpus.inits == 1 and [g.index for g in sampler.latest] == [0, 1]
        assert [g["gpu"] for g in store.latest_gpus()["gpus"]] == [0, 1]


# -- the store's tables


def test_samples_are_pruned_by_age_and_a_rerun_starts_its_aggregates_afresh(tmp_path):
    results = tmp_path / "res"
    h = add_job(results, 1, started_at=1000.0)
    with Store.open(results) as store:
        for i, (mb, util) in enumerate([(1000.0, 50.0), (3000.0, None), (2000.0, 100.0)]):
            store.record_gpu_sample(
                2000.0 + i, [gpu_row(0)], [{"job_hash": h, "gpu": 0, "mem_mb": mb, "util_pct": util}], keep_s=1.5
            )
        stats = store.gpu_job_stats(h)
        assert (stats["samples"], stats["peak_mb"], stats["util_mean"]) == (3, 3000.0, 75.0)  # None is no util
        assert [r[0] for r in store.db.execute("SELECT t FROM gpu_samples ORDER BY t")] == [2001.0, 2002.0]
        assert store.db.execute("SELECT count(*) FROM gpu_job_samples").fetchone()[0] == 2
        latest = store.latest_gpus()
        assert latest["t"] == 2002.0 and latest["gpus"][0]["mem_used_mb"] == 41000.0
        assert latest["jobs"] == [{"job_hash": h, "gpu": 0, "mem_mb": 2000.0, "model": "m-one", "kind": "gt"}]

        store.set_job_status(h, JobStatus.RUNNING, started_at=5000.0)  # run again
        store.record_gpu_sample(5001.0, [gpu_row(0)], [{"job_hash": h, "gpu": 0, "mem_mb": 500.0, "util_pct": 10.0}])
        stats = store.gpu_job_stats(h)
        assert (stats["since"], stats["samples"], stats["peak_mb"], stats["util_mean"]) == (5000.0, 1, 500.0, 10.0)


# -- the TUI


def record_sample(root: Path, h: str, t: float) -> None:
    """GPU 0 holding 40000 MiB of job `h` at 87%, GPU 1 idle and without power readings."""
    with Store.open(root) as store:
        store.record_gpu_sample(
            t,
            [gpu_row(0), dict(gpu_row(1, util=3.0, used=600.0), power_w=None)],
            [{"job_hash": h, "gpu": 0, "mem_mb": 40000.0, "util_pct": 87.0}],
        )


def test_panel_text_says_no_gpu_and_shows_bars_age_and_jobs():
    assert "no GPU" in panel_text(None, 0.0).plain
    snapshot = {
        "t": 100.0,
        "gpus": [gpu_row(0), dict(gpu_row(1, util=None), power_w=None)],
        "jobs": [{"job_hash": "ab" * 32, "gpu": 0, "mem_mb": 40960.0, "model": "m-big", "kind": "gt"}],
    }
    first, second, third = panel_text(snapshot, 103.0).plain.splitlines()
    assert "2 × NVIDIA H100 80GB HBM3" in first and "sampled 3 s ago" in first
    assert "87%" in second and "40.0/79.6G" in second and "64°C" in second and "abababa"[:6] + " m-big 40.0G" in second
    assert " - mem" in third and third.rstrip().endswith("-")  # no util, no power
    assert "not sampled since" in panel_text(snapshot, 1000.0).plain.splitlines()[0]


def test_the_panel_on_runs_and_live_and_historys_gpu_columns(filled_results, settle):
    root, hashes = filled_results.root, filled_results.hashes
    h = hashes["m-small to m-big xent s0"]

    async def body():
        app = W2SApp(root, start="runs")
        async with app.run_test(size=(160, 30)) as pilot:
            await settle(pilot)
            assert "no GPU" in line_with(screen_text(app), "GPU ·")
            record_sample(root, h, time.time())
            app.screen.query_one(GpuPanel).load()
            await settle(pilot)
            text = screen_text(app)
            assert "sampled" in line_with(text, "GPU · 2 × NVIDIA H100")
            assert f"{h[:6]} m-big 39.1G" in line_with(text, " 0 util")
            await app.push_screen(LiveScreen(h))
            await settle(pilot)
            text = screen_text(app)
            assert f"{h[:6]} m-big 39.1G" in line_with(text, " 0 util")
            assert "GPU peak 39.1 GiB, util 87%" in " ".join(text.split())  # on the info line, however wrapped
            await pilot.press("escape")
            await pilot.press("4")
            await settle(pilot)
            text = screen_text(app)
            assert "GPU peak" in line_with(text, "test acc") and "GPU util" in line_with(text, "test acc")
            assert "39.1 GiB" in line_with(text, h[:10]) and "87%" in line_with(text, h[:10])
            other = hashes["m-small to m-big logconf s0"][:10]
            assert "GiB" not in line_with(text, other) and "%" not in line_with(text, other)  # blank, never sampled

    asyncio.run(body())
