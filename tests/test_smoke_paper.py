"""recipes/smoke-paper.toml through the real path (CLI -> plan -> trainer subprocesses -> store):
a prompting job, a generative stage feeding a transfer, a pairwise reward-model transfer and a chess
transfer, each a row of `w2s results --json` with its weak, w2s and ceiling figures and PGR."""

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, run_w2s

from w2s_core.jobdir import JobDir
from w2s_core.status import JobStatus
from w2s_core.store import Store

SMOKE_PAPER = ROOT / "recipes" / "smoke-paper.toml"


@pytest.fixture(scope="module")
def smoke_paper(tmp_path_factory):
    os.environ.setdefault("W2S_CACHE", str(tmp_path_factory.mktemp("cache")))
    results = tmp_path_factory.mktemp("results")
    first = run_w2s(results, "run", str(SMOKE_PAPER))
    return results, first


def test_every_setting_has_its_row(smoke_paper):
    results, first = smoke_paper
    assert first.returncode == 0, first.stdout + first.stderr
    rows = json.loads(run_w2s(results, "results", "--json", check=True).stdout)
    by_task = {(r["task"], r["kind"]): r for r in rows}
    assert set(by_task) == {
        ("classify", "transfer"),
        ("classify", "prompt"),
        ("pairwise", "transfer"),
        ("chess", "transfer"),
    }
    prompt = by_task[("classify", "prompt")]
    assert (prompt["weak"], prompt["strong"], prompt["method"]) == ("tiny-gpt2-small", "tiny-gpt2-large", "0-shot")
    assert by_task[("classify", "transfer")]["generative"] is True  # the strong model started from its stage
    assert by_task[("pairwise", "transfer")]["data_kind"] == "pairwise"
    assert by_task[("chess", "transfer")]["data_kind"] == "chess"
    assert not by_task[("pairwise", "transfer")]["generative"]
    for r in rows:
        for key in ("weak_acc", "w2s_acc", "ceiling_acc"):
            assert 0 <= r[key] <= 1, (r["task"], r["kind"], key)
        assert "pgr" in r and r["seeds"] == [0]


def test_stage_jobs_ran_and_their_downstream_read_them(smoke_paper):
    results, _ = smoke_paper
    with Store.open(results, readonly=True) as store:
        jobs = store.jobs()
        assert len(jobs) == 11 and all(j["status"] == JobStatus.DONE for j in jobs)
        kinds = {j["kind"] for j in jobs}
        assert kinds == {"gt", "transfer", "prompt", "generative"}
        stage = next(j for j in jobs if j["kind"] == "generative")
        assert (Path(stage["dir"]) / "model" / "config.json").is_file()
        users = [j for j in jobs if (j["spec"].get("init") or {}).get("from") == stage["hash"]]
        assert {(j["kind"], j["model"]) for j in users} == {("gt", "tiny-gpt2-large"), ("transfer", "tiny-gpt2-large")}
        for job in users:
            written = JobDir(Path(job["dir"])).read_spec()
            assert Path(written["init_dir"]) == Path(stage["dir"]).resolve()
        prompt = next(j for j in jobs if j["kind"] == "prompt")
        assert prompt["model"] == "tiny-gpt2-large:0-shot" and store.predictions(prompt["hash"], "B")[0]
