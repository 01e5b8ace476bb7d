"""The Slurm executor on a real single-node Slurm (scripts/slurm-up.sh; scripts/test.sh starts it as root).

- recipes/smoke.toml through `--executor slurm` exits 0, `sacct` lists each job's Slurm id, and
  `w2s results --json` equals a local run of the same recipe;
- `w2s cancel` of a running Slurm job cancels it in Slurm (sacct) and in the store;
- `scontrol requeue` of a running job: it stops (SIGTERM: the trainer saves a checkpoint), runs
  again, resumes from its checkpoint, and its predictions equal an uninterrupted local run's.
Skipped, with the reason, where no Slurm node is up (no Slurm here, or slurm-up.sh failed).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, poll_until, run_w2s

from w2s_core.errors import W2SError
from w2s_core.jobdir import EVENTS, LOG, Event, JobDir, read_json
from w2s_core.status import TERMINAL, JobStatus
from w2s_core.store import Store
from w2s_core.supervision import runner as local_runner

SMOKE = ROOT / "recipes" / "smoke.toml"
TOL = 1e-6  # accuracies and PGR of a Slurm run against a local one


def _slurm_unready() -> str | None:
    """Why the Slurm tests cannot run here, or None when a node is up (idle or running jobs) and sacct answers."""
    failed = os.environ.get("W2S_SLURM_UP_ERROR")
    if failed:
        return f"scripts/slurm-up.sh failed: {failed}"
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no Slurm here (sinfo/sacct not found): run scripts/slurm-up.sh as root (scripts/test.sh does)"
    try:
        info = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Slurm does not answer: {exc}"
    states = info.stdout.split()
    if info.returncode != 0 or not {"idle", "mixed", "allocated", "completing"} & set(states):
        why = info.stderr.strip() or f"node states {states or 'none'}"
        return f"no Slurm node up ({why}): run scripts/slurm-up.sh as root"
    if acct.returncode != 0:
        return f"sacct does not work ({acct.stderr.strip() or acct.stdout.strip()}): run scripts/slurm-up.sh"
    return None


_REASON = _slurm_unready()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)
pytestmark = pytest.mark.slurm


def slurm(*args: str) -> str:
    """A Slurm command's stdout (AssertionError with its stderr when it fails)."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


def sacct_states(ids: list[str]) -> dict[str, str]:
    """{Slurm job id: its state} from sacct (the allocation line of each; "CANCELLED by 0" -> CANCELLED)."""
    out = slurm("sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids))
    pairs = (line.split("|") for line in out.splitlines() if "|" in line)
    return {job: state.split()[0] for job, state in pairs}


def squeue_state(slurm_id: str) -> str | None:
    out = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None


def store_jobs(results: Path) -> list[dict]:
    """The jobs of `results`' store; [] while the run is still creating it."""
    if not (results / "w2s.db").exists():
        return []
    try:
        with Store.open(results, readonly=True) as store:
            return [dict(job) for job in store.jobs()]
    except W2SError:  # the database exists but its schema is not written yet
        return []


def assert_close(a, b, where: str = "") -> None:
    """Equal JSON values, floats within TOL."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), f"{where}: {a!r} != {b!r}"
        assert math.isclose(a, b, abs_tol=TOL) or (math.isnan(a) and math.isnan(b)), f"{where}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a.keys() ^ b.keys())} differ"
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def results_json(results: Path) -> list[dict]:
    out = run_w2s(results, "results", "--json", check=True).stdout
    rows = json.loads(out)
    return sorted(rows, key=lambda r: json.dumps([r["kind"], r["weak"], r["strong"], r["method"], r["chain"]]))


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    """What the w2s subprocesses (and the Slurm jobs, which inherit it) see; restored after the module."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("W2S_CACHE", os.environ.get("W2S_CACHE") or str(tmp_path_factory.mktemp("cache")))
        # Ask Slurm every second, not every 5 s: a dependent job is submitted sooner after its upstream ends.
        env.setenv("W2S_SLURM_POLL_S", os.environ.get("W2S_SLURM_POLL_S", "1"))
        yield


@pytest.fixture(scope="module")
def scancel_leftovers():
    """Slurm ids to cancel when the module ends, whatever happened (a failed test leaves no job behind)."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


def timed_run(results: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = run_w2s(results, "run", *args)
    return done, time.monotonic() - start


def test_smoke_through_slurm_equals_a_local_run(tmp_path_factory, scancel_leftovers):
    local_dir, slurm_dir = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    local, local_s = timed_run(local_dir, str(SMOKE))
    assert local.returncode == 0, local.stdout + local.stderr
    on_slurm, slurm_s = timed_run(slurm_dir, str(SMOKE), "--executor", "slurm")
    scancel_leftovers += [j["slurm_job_id"] for j in store_jobs(slurm_dir) if j.get("slurm_job_id")]
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    print(f"smoke.toml wall time: local {local_s:.1f} s, slurm {slurm_s:.1f} s")

    jobs = store_jobs(slurm_dir)
    assert len(jobs) == 10 and all(j["status"] == JobStatus.DONE for j in jobs)
    assert {j["executor"] for j in jobs} == {"slurm"}
    ids = [j["slurm_job_id"] for j in jobs]
    assert all(ids) and len(set(ids)) == len(ids), ids
    assert sacct_states(ids) == {i: "COMPLETED" for i in ids}  # sacct lists every job, each completed
    assert {j["slurm_state"] for j in jobs} == {"COMPLETED"}

    local_rows, slurm_rows = results_json(local_dir), results_json(slurm_dir)
    assert len(slurm_rows) == 7  # 6 transfers and the bootstrap chain
    assert_close(slurm_rows, local_rows, "results")
    assert [j["requeues"] for j in jobs] == [0] * 10  # nothing was requeued


# A small recipe with long enough jobs to act on one while it trains: two tiny models, one transfer;
# a checkpoint every 10 optimiser steps (unhashed: job keys and results are those of a run without).
LONG = """
name = "slurm-long"
seeds = [0]
[data]
name = "synthetic"
n_train = 1200
n_test = 100
[train]
epochs = 8
batch_size = 8
minibatch_size = 8
max_length = 32
eval_every = 25
checkpoint_every = 10
[[models]]
name = "gpt2-h16"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1 }
[[models]]
name = "bert-h64"
path = "tiny-random-bert"
tiny = { hidden_size = 64, num_layers = 2 }
[[transfer]]
loss = "xent"
[launch]
parallel = 2
"""


def events_steps(job_dir: str) -> list[int]:
    path = Path(job_dir) / EVENTS
    lines = path.read_text().splitlines() if path.exists() else []
    events = [json.loads(line) for line in lines if line]
    return [e["step"] for e in events if isinstance(e.get("step"), int) and e.get(Event.KIND) != Event.FINAL]


def training_slurm_job(results: Path, min_step: int, kind: str | None = None) -> dict | None:
    """A job (of `kind`) running in Slurm that has logged optimiser step `min_step` or later, or None."""
    for job in store_jobs(results):
        if kind not in (None, job["kind"]):
            continue
        if job["status"] == JobStatus.RUNNING and job.get("slurm_job_id") and job.get("dir"):
            steps = events_steps(job["dir"])
            if steps and steps[-1] >= min_step and squeue_state(job["slurm_job_id"]) == "RUNNING":
                return job
    return None


def test_w2s_cancel_cancels_the_slurm_job(tmp_path, scancel_leftovers):
    recipe = tmp_path / "long.toml"
    recipe.write_text(LONG)
    results = tmp_path / "res"
    detached = run_w2s(results, "run", str(recipe), "--executor", "slurm", "--detach")
    assert detached.returncode == 0, detached.stdout + detached.stderr
    try:
        job = poll_until(lambda: training_slurm_job(results, 1), timeout=90, what="a Slurm job training")
    finally:
        scancel_leftovers += [j["slurm_job_id"] for j in store_jobs(results) if j.get("slurm_job_id")]
    cancelled = run_w2s(results, "cancel", str(recipe))
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr

    slurm_id = job["slurm_job_id"]
    poll_until(lambda: sacct_states([slurm_id]).get(slurm_id) == "CANCELLED", timeout=60, what="sacct: CANCELLED")
    poll_until(lambda: all(j["status"] in TERMINAL for j in store_jobs(results)), timeout=60, what="store settled")
    by_hash = {j["hash"]: j for j in store_jobs(results)}
    assert by_hash[job["hash"]]["status"] == JobStatus.CANCELLED
    assert by_hash[job["hash"]]["slurm_state"] == "CANCELLED"
    assert JobStatus.DONE not in {j["status"] for j in by_hash.values()}  # the transfer never ran
    assert squeue_state(slurm_id) in (None, "COMPLETING")  # neither pending nor running any more


def resumed_at(job_dir: str) -> int | None:
    """The optimiser step the trainer said it resumed from ("resuming from <checkpoint> at optimiser step
    N" in the job's log.txt, which a Slurm job appends to on each of its runs), or None."""
    log = Path(job_dir) / LOG
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.findall(r"resuming from \S+ at optimiser step (\d+)", text)
    return int(found[-1]) if found else None


def test_scontrol_requeue_resumes_from_the_checkpoint(tmp_path, scancel_leftovers):
    recipe = tmp_path / "long.toml"
    recipe.write_text(LONG)
    results = tmp_path / "res"
    command = ["run", str(recipe), "--executor", "slurm"]
    w2s_run = subprocess.Popen(
        [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        job = poll_until(lambda: training_slurm_job(results, 10, "gt"), timeout=90, what="a gt job past step 10")
        slurm_id = job["slurm_job_id"]
        scancel_leftovers.append(slurm_id)
        slurm("scontrol", "requeue", slurm_id)
        # Slurm holds a requeued job for two minutes (BeginTime); the test lets it start now.
        poll_until(lambda: squeue_state(slurm_id) in ("PENDING", None), timeout=60, what="the job requeued")
        subprocess.run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"], capture_output=True, timeout=30)
        out, _ = w2s_run.communicate(timeout=240)
    finally:
        if w2s_run.poll() is None:
            w2s_run.kill()
            w2s_run.communicate()
        scancel_leftovers += [j["slurm_job_id"] for j in store_jobs(results) if j.get("slurm_job_id")]
    assert w2s_run.returncode == 0, out

    after = {j["hash"]: j for j in store_jobs(results)}
    assert all(j["status"] == JobStatus.DONE for j in after.values()), out
    requeued = after[job["hash"]]
    assert requeued["requeues"] >= 1 and requeued["slurm_job_id"] == slurm_id, requeued  # the same Slurm job
    steps = events_steps(requeued["dir"])
    resumed = resumed_at(requeued["dir"])
    assert resumed is not None and 10 <= resumed < steps[-1], f"resumed at {resumed} (log.txt)"
    assert steps == list(range(1, steps[-1] + 1)), "each optimiser step once in events.jsonl after the resume"
    assert not JobDir(Path(requeued["dir"])).latest_checkpoint(), "checkpoints are removed when the job finishes"

    # The same job without the interruption: its job.json in a fresh folder, run by the local executor's
    # command (`python -m w2s_core.training DIR`, as a local one-process job runs): the same predictions.
    reference = JobDir(tmp_path / "reference")
    reference.path.mkdir()
    reference.write_spec(read_json(JobDir(Path(requeued["dir"])).job_json))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ref = subprocess.run(
        local_runner.launch_command(reference.path, None),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    ours = JobDir(Path(requeued["dir"]))
    assert_close(read_json(ours.predictions), read_json(reference.predictions), "predictions")
    assert [j["requeues"] for h, j in after.items() if h != job["hash"]] == [0, 0]  # the others never were
