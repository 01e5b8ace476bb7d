"""Plan expansion: pairs, chains, split discipline and stable content hashes."""

import json
import subprocess
import sys
from pathlib import Path

from test_recipe import GOOD, write

from w2s_core.spec.plan import build_plan, describe_plan
from w2s_core.spec.recipe import load_recipe


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
    position = {j.key: i for i, j in enumerate(plan.jobs)}
    for job in plan.jobs:
        for dep in job.deps:
            assert position[dep] < position[job.key]
        if job.kind != "gt":
            assert job.spec["labels"]["from"] == job.deps[0]


def test_no_job_labels_what_it_trained_on(tmp_path):
    plan = plan_of(tmp_path)
    by_hash = {j.key: j for j in plan.jobs}
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
    ab = next(
        j
        for j in plan.jobs
        if j.kind == "transfer"
        and (j.weak_model, j.model) == ("a", "b")
        and j.spec["loss"]["name"] == "xent"
        and j.seed == 0
    )
    roles = [r["role"] for r in ab.roles]
    assert sorted(roles) == ["bootstrap", "transfer"]


def test_relabel_same_is_explicit(tmp_path):
    plan = plan_of(tmp_path, GOOD.replace('chain = ["a", "b", "c"]', 'chain = ["a", "b", "c"]\nrelabel = "same"'))
    steps = [j for j in plan.jobs if any(r["role"] == "bootstrap" for r in j.roles)]
    assert steps and all(j.spec["predict_split"] == j.spec["train_split"] == "B" for j in steps)


def test_hashes_stable_and_sensitive(tmp_path):
    first = [j.key for j in plan_of(tmp_path).jobs]
    assert first == [j.key for j in plan_of(tmp_path).jobs]
    assert len(set(first)) == len(first)
    # stable across processes (no per-process hash randomisation)
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
        "from pathlib import Path; from w2s_core.spec.plan import build_plan;"
        "from w2s_core.spec.recipe import load_recipe;"
        f"print([j.key for j in build_plan(load_recipe(Path({str(tmp_path / 'r.toml')!r}))).jobs])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == first
    # changing model b's lr changes b's jobs and everything downstream of them, nothing else
    changed = plan_of(tmp_path, GOOD.replace("lr = 0.005", "lr = 0.004"))
    old = {(j.kind, j.model, j.weak_model, j.method, j.seed): j.key for j in plan_of(tmp_path).jobs}
    for job in changed.jobs:
        key = (job.kind, job.model, job.weak_model, job.method, job.seed)
        touches_b = job.model == "b" or job.weak_model == "b"
        assert (old[key] != job.key) == touches_b, key
    # the seed changes every job
    reseeded = plan_of(tmp_path, GOOD.replace("seeds = [0, 1]", "seeds = [0, 2]"))
    assert len({j.key for j in reseeded.jobs} & set(first)) == len(first) // 2


def test_per_model_training_settings_reach_the_job(tmp_path):
    text = GOOD.replace(
        'path = "tiny-random-gpt2"\nlr = 0.005', 'path = "tiny-random-gpt2"\nlr = 0.005\nmode = "probe"\nlora = true'
    )
    plan = plan_of(tmp_path, text)
    b = next(j for j in plan.jobs if j.kind == "gt" and j.model == "b")
    a = next(j for j in plan.jobs if j.kind == "gt" and j.model == "a")
    assert b.spec["train"]["mode"] == "probe" and b.spec["train"]["lora"] is True and b.spec["train"]["lr"] == 0.005
    assert a.spec["train"]["mode"] == "finetune" and a.spec["train"]["lora"] is False


# Job keys of recipes/smoke.toml, pinned. A key names a job's finished outputs, so a change here makes every
# results folder re-run every job: change the spec or its hashing only on purpose, bump SPEC_VERSION, then
# update this list.
# TRUNCATE_RIGHT_KEYS were taken before issue 8's restructure (which had to leave every key unchanged) and
# are what w2s computed before `[data] long_inputs` existed: inputs longer than max_length were cut on the
# right. The default is now long_inputs = "drop" (issue 9 item 4), which changes what a job computes (it
# leaves out every input too long for any model of the recipe, in every split), so its spec gains
# `data.long_inputs` and a `length_filter` naming the recipe's models, and every key changed on purpose:
# SMOKE_KEYS below. long_inputs = "truncate_right" must reproduce the old keys exactly (checked below), so
# results folders made before the change stay valid for recipes that ask for the old behaviour.
TRUNCATE_RIGHT_KEYS = [
    "0296310d3908e5fa96430e1823ecdcb32345edbe6b672d13c9b2e44d0f6a79b5",
    "06efb97f904a4443725a776b859aded22a2e40c4392126f671b139c6d6e9902d",
    "386185ce6071897d3c816944ed773c03aa94289e950e5a51bef6b77c98073701",
    "538ac84cac67ffbf561332b0e3004532c9e7c2068df220dabbf49323cb0d5d73",
    "5d87f0dbaf28a6e66ff698e5ce5688ae7cb8e8417d517ca40fef77523203d921",
    "666a86866db5f5ee26eb1a1b91be68b1138c3c32f05a67180fde4e643019ffa1",
    "7afd3e80d89cfe804cdd5eac433567dc3718bb6706f65ce9ebf234fc3b312304",
    "f0b071507abc8a0572169bfa05d0f4e39a176d339d0beafa7d58d865577d13d3",
    "f208d5b09049f250eba2be03db720f3962a8471447b05b260ad0f5f36f25c20d",
    "fb6a3cf7cc2e64b61bd90b720ba88dd856aa453159c9fb08da61448a0354a2a0",
]
SMOKE_KEYS = [
    "02e7371c30009942b6e33a786148d3525e1f4fa5780b73de903febc3116e7398",
    "24f3ddaa81e2ddd5604323647aa9c2b0211c1155dc77e5a100c8323231b2a15f",
    "3a634826d4b15f872830c44dcf70ea49dc495e3cbe35949e2c51f2356ff284a7",
    "3ef32816389dd92fea186b21150ef7c338d14e3e7e4125b68774920d74c6eee8",
    "4dda38b38ecc7a2dacc99bcace42899a5a6b2e29efe1c82aa8558a55af5ce44e",
    "94731a4d6a3934ca3820d31b1cda633865844a27e9b9bb039c8888c77b16e2c8",
    "9917d58fcfa59966a649700e7e30d122ce59e2f11ceb65e5806c18d54b9ff088",
    "bb22853108c00c75dad1140c20d102e360cbd927b3be0cf45fbc5b52061066c9",
    "bc8330c99f7a7eb5e2f3bb1c1918d100cb36b6e168f12c5b881cecf94455eb06",
    "ef212b1720702e36d8038aa676086f2bacded6a5c1e1b43ecfd4161a89d03d6b",
]
SMOKE = Path(__file__).resolve().parent.parent / "recipes" / "smoke.toml"


def test_smoke_job_keys_are_pinned():
    plan = build_plan(load_recipe(SMOKE))
    assert sorted(j.key for j in plan.jobs) == SMOKE_KEYS
    # the roles stored in the database and the spec written to job.json stay plain JSON
    for job in plan.jobs:
        assert json.loads(json.dumps(job.spec)) == job.spec
        assert all(json.loads(json.dumps(r)) == r for r in job.roles)
    gt = next(j for j in plan.jobs if j.kind == "gt" and j.model == "gpt2-h16")
    assert json.dumps(gt.roles[0], sort_keys=True) == '{"model": "gpt2-h16", "role": "gt", "seed": 0}'


def test_truncate_right_reproduces_the_old_keys_and_specs(tmp_path):
    text = SMOKE.read_text()
    assert text.count("seed = 0\n") == 1  # the [data] seed: long_inputs goes right after it
    recipe = tmp_path / "smoke.toml"
    recipe.write_text(text.replace("seed = 0\n", 'seed = 0\nlong_inputs = "truncate_right"\n'))
    plan = build_plan(load_recipe(recipe))
    assert sorted(j.key for j in plan.jobs) == TRUNCATE_RIGHT_KEYS
    default = {(j.kind, j.model, j.weak_model, j.method): j.spec for j in build_plan(load_recipe(SMOKE)).jobs}
    for job in plan.jobs:  # the old spec: the default's, less the two things drop mode added
        old = dict(default[(job.kind, job.model, job.weak_model, job.method)])
        old.pop("length_filter")
        old["data"] = {k: v for k, v in old["data"].items() if k != "long_inputs"}
        assert {**job.spec, "labels": None} == {**old, "labels": None}  # upstream keys differ, splits do not


def test_dry_run_listing_marks_cached_jobs(tmp_path):
    plan = plan_of(tmp_path)
    first = plan.jobs[0]
    lines = describe_plan(plan, cached={first.key})
    assert lines[0].startswith(f"recipe t ({tmp_path / 'r.toml'}): {len(plan.jobs)} jobs, seeds [0, 1]")
    assert len(lines) == len(plan.jobs) + 1
    assert f"{first.short} [cached]" in lines[1] and "(after -)" in lines[1]
    assert all("[to run]" in line for line in lines[2:])
    step = next(i for i, j in enumerate(plan.jobs, 1) if j.kind == "bootstrap")
    assert f"(after {plan.jobs[step - 1].deps[0][:10]})" in lines[step]
