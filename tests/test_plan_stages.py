"""Prompting jobs, generative stages and suites in the plan: specs, keys, deps, roles, errors; the
supervisor's upstreams; the PGR rows they make. Existing recipes keep every job key."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.table import format_table
from w2s_core.errors import InputError
from w2s_core.spec.plan import JobKind, build_plan, describe_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store, schema
from w2s_core.supervision import runner
from w2s_core.supervision.upstream import blocked, ready, upstream_hashes

ROOT = Path(__file__).resolve().parent.parent

# sha256 of the sorted job keys of each shipped recipe, taken before issue 10 (git HEAD 57175b7): the
# stages must leave every existing job's key as it was (the packaged demo models' keys depend on the
# installed wheel's version, so demo.toml is not pinned here; tests/test_plan.py pins smoke.toml's keys).
PINNED = {
    "smoke.toml": (10, "6f11ca042e8d2a49fd236d77f8762b9b2d299755191628a9f1ac51cf57502b27"),
    "presets/commonsense.toml": (4, "31b6d3d16cb4f8fe5abb093a20a693bba3ee64850b3930be7311aa519e4f6139"),
    "presets/ethics.toml": (4, "a8e8965347fd8c9978e9e6ec443af77ce26bd7fe4760a4c0b6a7a40a0a45fdfe"),
    "presets/nli.toml": (4, "eb18d432b33c2065033a546ba4723fffffcfd77530ac0e9d22938cda9ca2f9f3"),
    "presets/paraphrase.toml": (4, "58f21d1625573f179a43be5d4f1e315c84ce65b47775fcb3baaf46ec45f818b5"),
    "presets/reading.toml": (4, "eea679f1a2f672fd283fb2fa43b9138102150ba04da1cd0d8448cdd72f38425c"),
    "presets/science-qa.toml": (4, "b8484324824d3ba36bbcea01feb9e3ecd1bea277fe7d98c6e128b5940fc46c96"),
    "presets/sentiment.toml": (4, "e8e44cff2c879b686a23812713277ab7539ecf992f3c3b0201622eacacefedf7"),
}

MODELS = """
[[models]]
name = "small"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16 }
[[models]]
name = "mid"
path = "tiny-random-gpt2"
[[models]]
name = "big"
path = "tiny-random-gpt2"
tiny = { hidden_size = 64 }
"""
STAGED = (
    'name = "staged"\nseeds = [0, 1]\npairs = [["small", "big"], ["big:2-shot", "big"]]\n'
    '[data]\nname = "synthetic"\nn_train = 40\nn_test = 20\n[train]\nepochs = 1\n'
    + MODELS
    + '[[prompt]]\nmodels = ["big"]\nshots = [0, 2]\n'
    '[[generative]]\nmodels = ["big"]\nepochs = 2\nlr = 0.003\n'
    '[[bootstrap]]\nchain = ["small", "mid", "big"]\n'
)


def plan_of(tmp_path: Path, text: str, name: str = "r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return build_plan(load_recipe(path))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        plan_of(tmp_path, text)
    return str(info.value)


def by(plan, kind, model, seed=0, weak=None):
    return next(
        j
        for j in plan.jobs
        if j.kind == kind and j.model == model and j.seed == seed and (weak is None or j.weak_model == weak)
    )


@pytest.mark.parametrize("recipe", sorted(PINNED))
def test_existing_recipes_keep_their_job_keys(recipe):
    n, digest = PINNED[recipe]
    keys = sorted(j.key for j in build_plan(load_recipe(ROOT / "recipes" / recipe)).jobs)
    assert (len(keys), hashlib.sha256(" ".join(keys).encode()).hexdigest()) == (n, digest)


def test_prompt_jobs_have_the_interface_spec_and_roles(tmp_path):
    plan = plan_of(tmp_path, STAGED)
    job = by(plan, JobKind.PROMPT, "big:2-shot")
    spec = job.spec
    assert spec["stage"] == "prompt" and spec["prompt"] == {"shots": 2}
    assert (spec["train_split"], spec["predict_split"], spec["labels"]) == ("A", "B", "gt")
    assert spec["loss"] == {"name": "none", "params": {}}
    assert "init" not in spec and job.deps == []  # prompting reads the pre-trained model, not the stage's
    assert spec["model"]["tiny"] == {"hidden_size": 64}
    assert job.roles == [
        {"role": "prompt", "model": "big:2-shot", "base": "big", "shots": 2, "weak": "small", "seed": 0}
    ]
    assert {j.model for j in plan.jobs if j.kind == JobKind.PROMPT} == {"big:0-shot", "big:2-shot"}


def test_a_prompt_job_as_weak_supervisor(tmp_path):
    plan = plan_of(tmp_path, STAGED)
    prompt = by(plan, JobKind.PROMPT, "big:2-shot", seed=1)
    transfer = by(plan, JobKind.TRANSFER, "big", seed=1, weak="big:2-shot")
    assert transfer.spec["labels"] == {"from": prompt.key, "split": "B"} and transfer.spec["predict_split"] == "A"
    assert transfer.deps[0] == prompt.key
    assert {"role": "transfer", "weak": "big:2-shot", "strong": "big", "method": "xent", "seed": 1} in transfer.roles


def test_generative_stage_feeds_only_its_models_jobs(tmp_path):
    plan = plan_of(tmp_path, STAGED)
    for seed in (0, 1):
        stage = by(plan, JobKind.GENERATIVE, "big", seed)
        assert stage.spec["stage"] == "generative" and stage.deps == []
        assert stage.spec["generative"] == {"text": "task", "epochs": 2, "lr": 0.003}
        assert (stage.spec["train"]["epochs"], stage.spec["train"]["lr"]) == (2, 0.003)
        assert stage.roles == [{"role": "generative", "model": "big", "seed": seed}]
        staged = [j for j in plan.jobs if j.model == "big" and j.seed == seed and j.kind != JobKind.GENERATIVE]
        assert {j.kind for j in staged} == {JobKind.GT, JobKind.TRANSFER, JobKind.BOOTSTRAP}
        for job in staged:
            assert job.spec["init"] == {"from": stage.key} and stage.key in job.deps
        others = [j for j in plan.jobs if j.model in ("small", "mid") or j.kind in (JobKind.PROMPT, JobKind.GENERATIVE)]
        assert all("init" not in j.spec for j in others)
    order = {j.key: i for i, j in enumerate(plan.jobs)}
    assert all(order[d] < order[j.key] for j in plan.jobs for d in j.deps)  # still a dependency order


def test_stage_settings_reach_the_keys_of_the_staged_model_only(tmp_path):
    base = {(j.kind, j.model, j.weak_model, j.seed): j.key for j in plan_of(tmp_path, STAGED).jobs}
    changed = {
        (j.kind, j.model, j.weak_model, j.seed): j.key
        for j in plan_of(tmp_path, STAGED.replace("epochs = 2", "epochs = 3")).jobs
    }
    assert base.keys() == changed.keys()
    for what, key in base.items():
        kind, model = what[0], what[1]
        assert (changed[what] != key) == (model == "big" and kind != JobKind.PROMPT), what


def test_prompt_keys_ignore_training_settings_but_not_context(tmp_path):
    def prompt_keys(text):
        return {j.key for j in plan_of(tmp_path, text).jobs if j.kind == JobKind.PROMPT}

    base = prompt_keys(STAGED)
    assert (
        prompt_keys(STAGED.replace("epochs = 1\n", "epochs = 1\nlr = 0.02\nbatch_size = 8\nminibatch_size = 4\n"))
        == base
    )
    assert prompt_keys(STAGED.replace("epochs = 1\n", "epochs = 1\nmax_length = 48\n")).isdisjoint(base)


def test_generative_text_file_is_hashed_by_content(tmp_path):
    (tmp_path / "corpus.txt").write_text("some unlabelled text\n")
    text = STAGED.replace("epochs = 2\nlr = 0.003", 'epochs = 2\nlr = 0.003\ntext = { path = "corpus.txt" }')
    plan = plan_of(tmp_path, text)
    stage = by(plan, JobKind.GENERATIVE, "big")
    assert stage.spec["generative"]["text"] == {
        "path": str((tmp_path / "corpus.txt").resolve()),
        "sha256": hashlib.sha256(b"some unlabelled text\n").hexdigest(),
    }
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "corpus.txt").write_text("some unlabelled text\n")
    assert by(plan_of(moved, text), JobKind.GENERATIVE, "big").key == stage.key  # where it lies is not hashed
    (moved / "corpus.txt").write_text("other text\n")
    assert by(plan_of(moved, text), JobKind.GENERATIVE, "big").key != stage.key
    (moved / "corpus.txt").unlink()
    msg = error_of(moved, text)
    assert "generative[0].text.path" in msg and "corpus.txt" in msg and "not found" in msg


def test_describe_lines_for_stages(tmp_path):
    lines = describe_plan(plan_of(tmp_path, STAGED))
    text = "\n".join(lines)
    stage = by(plan_of(tmp_path, STAGED), JobKind.GENERATIVE, "big")
    assert "prompt    big:2-shot seed=0 trains nothing: 2 demonstrations from A, labels B" in text
    assert "prompt    big:0-shot seed=0 trains nothing: no demonstrations, labels B" in text
    assert "generative big seed=0 trains on next tokens of the inputs of A and B (epochs 2, lr 0.003)" in text
    gt_big = next(line for line in lines if "gt        big seed=0" in line)
    assert f"(from generative {stage.short})" in gt_big
    assert "(from generative" not in next(line for line in lines if "gt        small seed=0" in line)


SUITE = (
    'name = "suite"\nseeds = [0, 1]\n[train]\nepochs = 1\nlr = 0.01\n[[transfer]]\nloss = "xent"\n'
    '[[task]]\nname = "words"\n[task.data]\nname = "synthetic"\nn_train = 40\nn_test = 20\n'
    + MODELS.replace("[[models]]", "[[task.models]]")
    + '[[task.generative]]\nmodels = ["big"]\n'
    '[[task]]\n[task.data]\nname = "synthetic"\nn_train = 60\nn_test = 20\n[task.train]\nlr = 0.02\n'
    '[[task.transfer]]\nloss = "logconf"\n'
    '[[task.models]]\nname = "a"\npath = "tiny-random-bert"\n[[task.models]]\nname = "b"\npath = "tiny-random-gpt2"\n'
)


def test_a_suite_plans_every_task_with_the_shared_settings(tmp_path):
    plan = plan_of(tmp_path, SUITE)
    recipe = plan.recipe
    assert recipe.is_suite and [p.name for p in recipe.parts] == ["words", "synthetic"]  # unnamed: the data's name
    assert recipe.parts[1].task == "synthetic" and recipe.parts[0].seeds == [0, 1]
    tasks = {role["task"] for j in plan.jobs for role in j.roles}
    assert tasks == {"words", "synthetic"}
    words = [j for j in plan.jobs if j.roles[0]["task"] == "words"]
    assert len(words) == 2 * (1 + 3 + 3)  # per seed: the stage, 3 GT jobs, 3 pairs with xent
    second = [j for j in plan.jobs if j.roles[0]["task"] == "synthetic"]
    assert {j.method for j in second if j.kind == JobKind.TRANSFER} == {"logconf"}  # its own [[transfer]] wins
    assert all(j.spec["train"]["lr"] == 0.02 and j.spec["data"]["n_train"] == 60 for j in second)
    assert all(j.spec["train"]["lr"] == 0.01 for j in words if j.kind != JobKind.GENERATIVE)
    assert by(plan, JobKind.GT, "big").spec["init"]["from"] == by(plan, JobKind.GENERATIVE, "big").key
    listing = describe_plan(plan)
    assert listing[0].endswith("tasks words, synthetic") and "] synthetic: gt        a seed=0" in "\n".join(listing)


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (
            ('[[task]]\nname = "words"\n', '[data]\nname = "synthetic"\n[[task]]\nname = "words"\n'),
            ["data: a suite ([[task]] tables) sets `data` in each [[task]]"],
        ),
        (("n_train = 60", "n_train = 61"), ["task[1].data.n_train", "even"]),
        (
            ('[[task.generative]]\nmodels = ["big"]', '[[task.generative]]\nmodels = ["bigg"]'),
            ["task[0].generative[0].models (task 'words')", "did you mean 'big'"],
        ),
        (
            ("[task.train]\nlr = 0.02\n", "[task.train]\nlr = 0.02\n[task.launch]\nparallel = 2\n"),
            ["task[1].launch", "the suite's: set it at the top level"],
        ),
        (("[[task]]\n[task.data]", '[[task]]\nname = "words"\n[task.data]'), ["two tasks are named 'words'"]),
    ],
)
def test_suite_problems_name_the_task(tmp_path, edit, fragments):
    old, new = edit
    assert old in SUITE
    msg = error_of(tmp_path, SUITE.replace(old, new, 1))
    assert all(f in msg for f in fragments), msg


@pytest.mark.parametrize(
    "edit, key, expected",
    [
        (("shots = [0, 2]", "shots = [0, 21]"), "prompt[0].shots", "only 20 examples"),
        (('models = ["big"]\nshots', 'models = ["encoder"]\nshots'), "prompt[0].models", "is an encoder"),
        (
            ('[[generative]]\nmodels = ["big"]', '[[generative]]\nmodels = ["encoder"]'),
            "generative[0].models",
            "is an encoder",
        ),
        (
            ('[[generative]]\nmodels = ["big"]', '[[generative]]\nmodels = ["hub"]'),
            "generative[0].models",
            "is an encoder",
        ),
        (
            ('[[generative]]\nmodels = ["big"]', '[[generative]]\nmodels = ["nope"]'),
            "generative[0].models",
            "unknown model 'nope'",
        ),
        (('models = ["big"]\nshots', 'models = ["bg"]\nshots'), "prompt[0].models", "did you mean 'big'"),
        (('["big:2-shot", "big"]', '["big:5-shot", "big"]'), "pairs[1]", "unknown model 'big:5-shot'"),
        (('["big:2-shot", "big"]', '["big", "big:2-shot"]'), "pairs[1]", "unknown model 'big:2-shot'"),
        (("shots = [0, 2]", 'shots = [0, 2]\nweak = "smal"'), "prompt[0].weak", "did you mean 'small'"),
        (("shots = [0, 2]", "shots = [-1]"), "prompt[0].shots", "integers >= 0"),
        (
            ("epochs = 2\nlr = 0.003", 'epochs = 2\nlr = 0.003\ntext = "tasks"'),
            "generative[0].text",
            '"task" or a table',
        ),
    ],
)
def test_stage_problems_name_the_key(tmp_path, edit, key, expected):
    extra = (
        '[[models]]\nname = "encoder"\npath = "tiny-random-bert"\n'
        '[[models]]\nname = "hub"\npath = "some-org/some-model"\narch = "encoder"\n'
    )
    text = STAGED.replace("[[prompt]]", extra + "[[prompt]]")
    old, new = edit
    assert old in text
    msg = error_of(tmp_path, text.replace(old, new, 1))
    assert str(tmp_path / "r.toml") in msg and key in msg and expected in msg, msg


def test_an_unknown_hub_model_is_left_to_the_job(tmp_path):
    text = STAGED.replace("[[prompt]]", '[[models]]\nname = "hub"\npath = "some-org/some-model"\n[[prompt]]')
    text = text.replace('[[generative]]\nmodels = ["big"]', '[[generative]]\nmodels = ["big", "hub"]')
    plan = plan_of(tmp_path, text)
    assert by(plan, JobKind.GENERATIVE, "hub").spec["model"]["path"] == "some-org/some-model"


def test_chess_and_prompting_need_the_right_task(tmp_path):
    chess = (
        'name = "c"\n[data]\nname = "mate-in-one"\nkind = "chess"\nn_train = 40\nn_test = 20\n'
        '[[models]]\nname = "g"\npath = "tiny-random-gpt2"\n[[models]]\nname = "e"\npath = "tiny-random-bert"\n'
    )
    msg = error_of(tmp_path, chess)
    assert "models.e" in msg and "causal" in msg and "models.g" not in msg
    msg = error_of(tmp_path, chess.replace('"tiny-random-bert"', '"tiny-random-gpt2"\nmode = "probe"'))
    assert "models.e.mode" in msg and "finetune" in msg
    pairs = chess.replace('"mate-in-one"\nkind = "chess"', '"synthetic-pairs"\nkind = "pairwise"')
    msg = error_of(tmp_path, pairs + '[[prompt]]\nmodels = ["g"]\n')
    assert "prompt: prompting scores per-class label words" in msg and "'pairwise'" in msg


def test_upstream_hashes_are_labels_then_init():
    assert upstream_hashes({"labels": "gt"}) == []
    assert upstream_hashes({"labels": {"from": "a", "split": "B"}}) == ["a"]
    assert upstream_hashes({"labels": "gt", "init": {"from": "g"}}) == ["g"]
    assert upstream_hashes({"labels": {"from": "a", "split": "B"}, "init": {"from": "g"}}) == ["a", "g"]


def _job(store, h, kind, spec, status):
    store.upsert_job({"hash": h, "kind": kind, "model": "m", "seed": 0, "spec": spec, "recipe_hash": "r"})
    store.set_job_status(h, status)


def test_ready_and_blocked_wait_for_the_generative_stage(tmp_path):
    with Store.open(tmp_path) as store:
        _job(store, "gen1", "generative", {"labels": "none", "stage": "generative"}, JobStatus.RUNNING)
        _job(store, "weak1", "gt", {"labels": "gt"}, JobStatus.DONE)
        _job(
            store,
            "t1",
            "transfer",
            {"labels": {"from": "weak1", "split": "B"}, "init": {"from": "gen1"}},
            JobStatus.QUEUED,
        )
        assert [r["hash"] for r in ready(store)] == [] and blocked(store) == []
        store.set_job_status("gen1", JobStatus.DONE)
        assert [r["hash"] for r in ready(store)] == ["t1"]
        store.set_job_status("gen1", JobStatus.FAILED)
        [(row, why)] = blocked(store)
        assert row["hash"] == "t1" and "gen1" in why and "failed" in why
        spec = runner.launch_spec(store, store.get_job("t1")["spec"])
        assert spec["upstream_dir"] == str(runner.job_dir(store, "weak1").resolve())
        assert spec["init_dir"] == str(runner.job_dir(store, "gen1").resolve())


def test_store_migration_adds_the_stage_kinds_keeping_rows_and_order(tmp_path):
    # a database as the last schema before the stages (m001..m003) wrote it; later migrations run on open
    db = tmp_path / "w2s.db"
    conn = sqlite3.connect(db)
    stage_kinds = [m.__name__ for m in schema.MIGRATIONS.steps].index("m004_stage_job_kinds")
    for migration in schema.MIGRATIONS.steps[:stage_kinds]:
        migration(conn)
    for h in ("b", "a"):
        conn.execute(
            "INSERT INTO jobs (hash, kind, model, seed, spec, status) VALUES (?, 'gt', 'm', 0, '{}', 'done')", (h,)
        )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO jobs (hash, kind, model, seed, spec) VALUES ('p', 'prompt', 'm', 0, '{}')")
    conn.execute(f"PRAGMA user_version = {stage_kinds}")
    conn.commit()
    conn.close()
    with Store.open(tmp_path) as store:
        store.upsert_job({"hash": "p", "kind": "prompt", "model": "m:0-shot", "seed": 0, "spec": {}})
        rows = store.db.execute("SELECT hash FROM jobs ORDER BY rowid").fetchall()
        assert [r[0] for r in rows] == ["b", "a", "p"]
        assert store.get_job("a")["status"] == "done"


def _add(store, h, role, acc, spec=None, kind="gt"):
    store.upsert_job(
        {
            "hash": h,
            "kind": kind,
            "model": role.get("model", "x"),
            "seed": role["seed"],
            "spec": spec or {},
            "recipe_hash": "r",
        }
    )
    store.set_job_status(h, JobStatus.DONE)
    store.link_job("r", h, json.dumps(role))
    store.set_results(h, {"test_acc": acc, "n_test": 100})


def test_prompt_rows_and_prompt_supervised_transfers(tmp_path):
    data = {"data": {"name": "synthetic"}}
    with Store.open(tmp_path) as store:
        store.add_recipe("r", "staged", "r.toml", "text")
        for seed, (w, c, p, t, pt) in enumerate([(0.6, 0.8, 0.7, 0.75, 0.72), (0.62, 0.82, 0.66, 0.77, 0.7)]):
            _add(store, f"gw{seed}", {"role": "gt", "model": "small", "seed": seed}, w, data)
            _add(store, f"gs{seed}", {"role": "gt", "model": "big", "seed": seed}, c, {**data, "init": {"from": "g"}})
            role = {"role": "prompt", "model": "big:2-shot", "base": "big", "shots": 2, "weak": "small", "seed": seed}
            _add(store, f"p{seed}", role, p, data, "prompt")
            staged = {**data, "init": {"from": "g"}}
            for h, weak, acc in ((f"t{seed}", "small", t), (f"u{seed}", "big:2-shot", pt)):
                role = {"role": "transfer", "weak": weak, "strong": "big", "method": "xent", "seed": seed}
                _add(store, h, role, acc, staged, "transfer")
        rows = pgr_table(store, "r")
    kinds = [(r["kind"], r["weak"], r["strong"], r["method"]) for r in rows]
    assert kinds == [
        ("transfer", "small", "big", "xent"),
        ("transfer", "big:2-shot", "big", "xent"),
        ("prompt", "small", "big", "2-shot"),
    ]
    prompt = rows[2]
    assert prompt["weak_acc"] == pytest.approx(0.61) and prompt["w2s_acc"] == pytest.approx(0.68)
    assert prompt["ceiling_acc"] == pytest.approx(0.81)
    assert prompt["per_seed"][0]["pgr"] == pytest.approx((0.7 - 0.6) / (0.8 - 0.6))
    supervised = rows[1]
    assert supervised["weak_acc"] == pytest.approx(0.68)  # the prompt job's results are its weak figure
    assert supervised["per_seed"][1]["pgr"] == pytest.approx((0.7 - 0.66) / (0.82 - 0.66))
    assert all(r["task"] == "synthetic" and r["data_kind"] == "classify" and r["generative"] for r in rows)
    table = format_table(rows)
    assert "2-shot prompt" in table and "big +gen" in table and "task" not in table.splitlines()[1]


def test_suite_rows_carry_their_task_and_the_table_shows_it(tmp_path):
    with Store.open(tmp_path) as store:
        store.add_recipe("r", "suite", "r.toml", "text")
        for task, kind, (w, c, t) in (("one", None, (0.6, 0.8, 0.7)), ("two", "pairwise", (0.5, 0.9, 0.6))):
            spec = {"data": {"name": "synthetic", **({"kind": kind} if kind else {})}}
            _add(store, f"{task}w", {"role": "gt", "model": "a", "seed": 0, "task": task}, w, spec)
            _add(store, f"{task}s", {"role": "gt", "model": "b", "seed": 0, "task": task}, c, spec)
            role = {"role": "transfer", "weak": "a", "strong": "b", "method": "xent", "seed": 0, "task": task}
            _add(store, f"{task}t", role, t, spec, "transfer")
        rows = pgr_table(store, "r")
    assert [(r["task"], r["data_kind"], r["generative"]) for r in rows] == [
        ("one", "classify", False),
        ("two", "pairwise", False),
    ]
    assert [r["pgr"] for r in rows] == [pytest.approx(0.5), pytest.approx(0.25)]
    lines = format_table(rows).splitlines()
    assert lines[1].split()[0] == "task" and lines[3].startswith("one ") and lines[4].startswith("two ")


def test_preflight_and_prefetch_read_every_task(tmp_path):
    from w2s_core.supervision.prefetch import prefetch
    from w2s_core.supervision.preflight import preflight

    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    recipe = load_recipe(path)
    preflight(recipe)
    items = prefetch(recipe)
    assert [(i.kind, i.name) for i in items] == [
        ("model", "small"), ("model", "mid"), ("model", "big"), ("model", "a"), ("model", "b"),
        ("dataset", "synthetic"), ("dataset", "synthetic"),
    ]  # fmt: skip
    assert all(i.ok for i in items)
    path.write_text(SUITE.replace("n_train = 60\nn_test = 20", "n_train = 60\nn_test = 999999"))
    with pytest.raises(InputError, match="task 'synthetic': .*n_test"):
        preflight(load_recipe(path))
