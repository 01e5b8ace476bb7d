"""recipes/smoke.toml through the real path: CLI -> plan -> trainer subprocesses -> store.

Each job has one process, so its trainer is started directly (`python -m w2s_core.training JOB_DIR`, no
`accelerate launch`: launch_config.direct)."""

import json
import math
import os
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_w2s  # the w2s_cli fixture's function: module-scoped fixtures use it too

from w2s_core.analysis import stats as metrics
from w2s_core.jobdir import EVENTS, LOG, Event
from w2s_core.status import JobStatus, RunStatus
from w2s_core.store import Store

SMOKE = ROOT / "recipes" / "smoke.toml"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    os.environ.setdefault("W2S_CACHE", str(tmp_path_factory.mktemp("cache")))
    results = tmp_path_factory.mktemp("results")
    first = run_w2s(results, "run", str(SMOKE))
    return results, first


def test_smoke_runs_and_reports_every_pair(smoke):
    results, first = smoke
    assert first.returncode == 0, first.stdout + first.stderr
    rows = json.loads(run_w2s(results, "results", "--json").stdout)
    transfers = {(r["weak"], r["strong"], r["method"]) for r in rows if r["kind"] == "transfer"}
    models = ["gpt2-h16", "bert-h32", "bert-h64"]
    pairs = [(models[i], models[j]) for i in range(3) for j in range(i + 1, 3)]
    assert transfers == {(w, s, m) for w, s in pairs for m in ("xent", "logconf")}
    chain = [r for r in rows if r["kind"] == "bootstrap"]
    assert len(chain) == 1 and chain[0]["chain"] == models
    for r in rows:
        for key in ("weak_acc", "w2s_acc", "ceiling_acc"):
            assert 0 <= r[key] <= 1
        expected = (r["w2s_acc"] - r["weak_acc"]) / (r["ceiling_acc"] - r["weak_acc"])
        assert r["pgr"] == pytest.approx(expected)


def test_store_matches_the_job_files(smoke):
    results, _ = smoke
    with Store.open(results, readonly=True) as store:
        jobs = store.jobs()
        assert len(jobs) == 10 and all(j["status"] == JobStatus.DONE for j in jobs)
        for job in jobs:
            job_dir = Path(job["dir"])
            lines = [json.loads(x) for x in (job_dir / EVENTS).read_text().splitlines()]
            expected = sum(
                1
                for e in lines
                for k, v in e.items()
                if k != Event.STEP and isinstance(v, (int, float)) and not isinstance(v, bool)
            )
            assert len(store.metrics(job["hash"])) == expected  # every event ingested exactly once
            probs, labels = store.predictions(job["hash"], "test")
            res = store.results(job["hash"])
            assert len(probs) == 400
            assert res[Event.TEST_ACC] == pytest.approx(metrics.accuracy(probs, labels))
            if job["kind"] != "gt":
                alphas = [m["value"] for m in store.metrics(job["hash"], Event.ALPHA)]
                if job["loss"] == "logconf":  # linear warm-up from ~0 to 0.5, never above
                    assert alphas[0] < 0.1 and max(alphas) == pytest.approx(0.5)
                    assert all(b >= a for a, b in zip(alphas, alphas[1:]))
                else:
                    assert alphas == []
                assert not math.isnan(res["agree"])


def test_second_run_trains_nothing(smoke):
    results, _ = smoke
    logs = {p: p.stat().st_mtime_ns for p in results.glob(f"jobs/*/{LOG}")}
    again = run_w2s(results, "run", str(SMOKE))
    assert again.returncode == 0, again.stderr
    assert "10 already done, 0 to run" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in results.glob(f"jobs/*/{LOG}")} == logs
    runs = json.loads(run_w2s(results, "runs", "--json").stdout)
    assert [r["status"] for r in runs] == [RunStatus.DONE, RunStatus.DONE]


def test_failed_job_skips_dependents_only(tmp_path):
    recipe = tmp_path / "broken.toml"
    # the weak model cannot load (a local folder whose config.json is not a model config, so the
    # checks before queueing pass): its GT job fails, the transfer that needs its labels is skipped,
    # and the strong model's own GT job (independent) still runs. Independent only outside
    # long_inputs = "drop": there every job needs every model's tokenizer to find the inputs too
    # long for any of them, so a broken model fails them all (tests/test_long_inputs.py)
    broken = tmp_path / "no-such-org" / "no-such-model"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    head = SMOKE.read_text().split("[[models]]")[0].replace("seed = 0\n", 'seed = 0\nlong_inputs = "truncate_right"\n')
    recipe.write_text(
        head.replace("epochs = 3", "epochs = 1")
        + f"""
[[models]]
name = "broken"
path = "{broken}"

[[models]]
name = "ok"
path = "tiny-random-bert"
"""
    )
    env_out = run_w2s(tmp_path / "res", "run", str(recipe), "--parallel", "2")
    assert env_out.returncode == 1
    assert "FAILED" in env_out.stdout and "skipped" in env_out.stdout
    assert "Traceback" not in env_out.stdout + env_out.stderr
    assert "could not load" in env_out.stdout
    with Store.open(tmp_path / "res", readonly=True) as store:
        status = {(j["kind"], j["model"]): j for j in store.jobs()}
    assert status[("gt", "ok")]["status"] == JobStatus.DONE
    assert status[("gt", "broken")]["status"] == JobStatus.FAILED
    assert "no-such-org/no-such-model" in status[("gt", "broken")]["error"]
    assert status[("transfer", "ok")]["status"] == JobStatus.SKIPPED


def test_force_reruns_without_duplicating_rows(tmp_path):
    recipe = tmp_path / "one.toml"
    recipe.write_text(
        SMOKE.read_text().split("[[models]]")[0].replace("epochs = 3", "epochs = 1")
        + """
[[models]]
name = "a"
path = "tiny-random-bert"
tiny = { hidden_size = 16, num_layers = 1 }

[[models]]
name = "b"
path = "tiny-random-bert"
"""
    )
    res = tmp_path / "res"
    assert run_w2s(res, "run", str(recipe), "--parallel", "2").returncode == 0
    forced = run_w2s(res, "run", str(recipe), "--force", "--parallel", "2")
    assert forced.returncode == 0 and "3 to run" in forced.stdout
    with Store.open(res, readonly=True) as store:
        for job in store.jobs():
            lines = (Path(job["dir"]) / EVENTS).read_text().splitlines()
            keys = [
                k
                for line in lines
                for k, v in json.loads(line).items()
                if k != Event.STEP and isinstance(v, (int, float))
            ]
            assert len(store.metrics(job["hash"])) == len(keys)
            assert job["run_id"] == 2 and job["provenance"]["job_env"]["device"] == "cpu"
            assert job["provenance"]["command"] == [
                sys.executable,
                "-m",
                "w2s_core.training",
                str(Path(job["dir"]).resolve()),
            ]
