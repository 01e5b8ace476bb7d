"""Plan expansion: pairs, chains, split discipline and stable content hashes."""

import json
import subprocess
import sys
from pathlib import Path

from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import load_recipe

from test_recipe import GOOD, write


def plan_of(tmp_path: Path, text: str = GOOD):
    return build_plan(load_recipe(write(tmp_path, text)))


def test_jobs_per_seed(tmp_path):
    plan = plan_of(tmp_path)
    per_seed = {s: [j for j in plan.jobs if j.seed == s] for s in (0, 1)}
    for jobs in per_seed.values():
        kinds = [j.kind for j in jobs]
        # 3 GT + 3 pairs x 2 methods; the chain a->b->c reuses transfer a->b (xent) and adds one step
        assert kinds.count("gt") == 3
        assert kinds.count("transfer") == 6
        assert kinds.count("bootstrap") == 1
    pairs = {(j.weak_model, j.model, j.spec["loss"]["name"]) for j in plan.jobs if j.kind == "transfer"}
    assert pairs == {(w, s, m) for w, s in [("a", "b"), ("a", "c"), ("b", "c")] for m in ("xent", "logconf")}


def test_dependency_order_and_upstream(tmp_path):
    plan = plan_of(tmp_path)
    position = {j.hash: i for i, j in enumerate(plan.jobs)}
    for job in plan.jobs:
        for dep in job.deps:
            assert position[dep] < position[job.hash]
        if job.kind != "gt":
            assert job.spec["labels"]["from"] == job.deps[0]


def test_no_job_labels_what_it_trained_on(tmp_path):
    plan = plan_of(tmp_path)
    by_hash = {j.hash: j for j in plan.jobs}
    for job in plan.jobs:
        assert job.spec["predict_split"] != job.spec["train_split"]
        if job.deps:
            upstream = by_hash[job.deps[0]]
            # trains on exactly the split its upstream labelled
            assert job.spec["train_split"] == upstream.spec["predict_split"] == job.spec["labels"]["split"]
    step2 = next(j for j in plan.jobs if j.kind == "bootstrap" and j.seed == 0)
    assert step2.model == "c" and step2.weak_model == "b" and step2.spec["train_split"] == "A"


def test_chain_step_one_is_the_pair_transfer(tmp_path):
    plan = plan_of(tmp_path)
    ab = next(j for j in plan.jobs if j.kind == "transfer" and (j.weak_model, j.model) == ("a", "b")
              and j.spec["loss"]["name"] == "xent" and j.seed == 0)
    roles = [r["role"] for r in ab.roles]
    assert sorted(roles) == ["bootstrap", "transfer"]


def test_relabel_same_is_explicit(tmp_path):
    plan = plan_of(tmp_path, GOOD.replace('chain = ["a", "b", "c"]', 'chain = ["a", "b", "c"]\nrelabel = "same"'))
    steps = [j for j in plan.jobs if any(r["role"] == "bootstrap" for r in j.roles)]
    assert steps and all(j.spec["predict_split"] == j.spec["train_split"] == "B" for j in steps)


def test_hashes_stable_and_sensitive(tmp_path):
    first = [j.hash for j in plan_of(tmp_path).jobs]
    assert first == [j.hash for j in plan_of(tmp_path).jobs]
    assert len(set(first)) == len(first)
    # stable across processes (no per-process hash randomisation)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
            "from pathlib import Path; from w2s_core.spec.plan import build_plan; from w2s_core.spec.recipe import load_recipe;"
            f"print([j.hash for j in build_plan(load_recipe(Path({str(tmp_path / 'r.toml')!r}))).jobs])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == first
    # changing model b's lr changes b's jobs and everything downstream of them, nothing else
    changed = plan_of(tmp_path, GOOD.replace("lr = 0.005", "lr = 0.004"))
    old = {(j.kind, j.model, j.weak_model, j.method, j.seed): j.hash for j in plan_of(tmp_path).jobs}
    for job in changed.jobs:
        key = (job.kind, job.model, job.weak_model, job.method, job.seed)
        touches_b = job.model == "b" or job.weak_model == "b"
        assert (old[key] != job.hash) == touches_b, key
    # the seed changes every job
    reseeded = plan_of(tmp_path, GOOD.replace("seeds = [0, 1]", "seeds = [0, 2]"))
    assert len({j.hash for j in reseeded.jobs} & set(first)) == len(first) // 2


def test_per_model_training_settings_reach_the_job(tmp_path):
    text = GOOD.replace('path = "tiny-random-gpt2"\nlr = 0.005', 'path = "tiny-random-gpt2"\nlr = 0.005\nmode = "probe"\nlora = true')
    plan = plan_of(tmp_path, text)
    b = next(j for j in plan.jobs if j.kind == "gt" and j.model == "b")
    a = next(j for j in plan.jobs if j.kind == "gt" and j.model == "a")
    assert b.spec["train"]["mode"] == "probe" and b.spec["train"]["lora"] is True and b.spec["train"]["lr"] == 0.005
    assert a.spec["train"]["mode"] == "finetune" and a.spec["train"]["lora"] is False
