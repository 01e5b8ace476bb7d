"""Hyperparameter grids (issue 13): list values expand to grid points planned into one DAG.

Planner units: a recipe without lists plans the job keys (and roles) it planned before grids existed,
for every shipped recipe; each grid point plans exactly the jobs of the scalar recipe with its values;
a key a point does not change (alpha, for GT jobs) shares their jobs; bad values name their index;
lists on keys that do not sweep say why. End to end (recipes/smoke-grid.toml through `w2s run`, once
for the module): `w2s results --json --by lr` has one row per lr per setup, and the GT jobs ran once
per model, seed and lr, whatever alpha.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_w2s
from test_recipe import GOOD, error_of, write
from test_recipe_paper import write_puzzles
from tui_helpers import screen_text

from w2s_core.analysis.pivot import pivot
from w2s_core.assets import installed
from w2s_core.errors import InputError
from w2s_core.spec import grid
from w2s_core.spec.plan import build_plan, describe_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.store import Store, queries
from w2s_tui.app import W2SApp
from w2s_tui.widgets import PgrTable

SMOKE_GRID = ROOT / "recipes" / "smoke-grid.toml"
# Each shipped recipe's plan as the planner made it before grids existed (job count, a digest of its
# ordered job keys and one of its roles): taken from the commit before issue 13, never regenerated
# by hand. A change here means results folders would re-run their jobs: see tests/test_plan.py.
BEFORE = json.loads((ROOT / "tests" / "fixtures" / "recipe_keys_before_grids.json").read_text())
NEEDS_ASSETS = {"recipes/demo.toml", "recipes/demo-finetune.toml", "recipes/demo-rm.toml"}  # packaged models


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def plan_text(tmp_path: Path, text: str, name: str = "r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return build_plan(load_recipe(path))


# --- a recipe without lists plans what it planned before ---------------------------------------


@pytest.mark.parametrize("recipe", sorted(BEFORE))
def test_recipes_without_lists_plan_the_keys_and_roles_they_had(recipe, tmp_path):
    if recipe in NEEDS_ASSETS and not all(installed().values()):
        pytest.skip("the demo's packaged models are not installed")
    path = ROOT / recipe
    if recipe == "recipes/paper-chess.toml":  # its puzzle file is the user's download: a fixed stand-in
        write_puzzles(tmp_path / "lichess_db_puzzle.csv")
        path = Path(shutil.copy(path, tmp_path / path.name))
    loaded = load_recipe(path)
    assert loaded.axes == [] and loaded.points == [] and loaded.grid == {}
    plan = build_plan(loaded)
    roles = [json.dumps(r, sort_keys=True) for j in plan.jobs for r in j.roles]
    assert not any('"grid"' in r for r in roles)
    found = {"jobs": len(plan.jobs), "keys_sha256": digest([j.key for j in plan.jobs]), "roles_sha256": digest(roles)}
    assert found == BEFORE[recipe]
    assert all(not line.startswith("grid:") for line in describe_plan(plan))


def test_the_pinned_recipes_are_still_shipped_and_smoke_grid_is_a_grid():
    shipped = {
        p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("recipes/*.toml"), *ROOT.glob("recipes/presets/*.toml")]
    }
    assert set(BEFORE) <= shipped  # a recipe renamed or removed: the pins would silently test less
    assert load_recipe(SMOKE_GRID).swept == ["lr", "alpha"]


# --- expansion and sharing --------------------------------------------------------------------


def test_each_point_plans_the_jobs_of_its_scalar_recipe(tmp_path):
    text = GOOD.replace("lr = 0.002", "lr = [0.002, 0.004]").replace("alpha = 0.75", "alpha = [0.5, 0.75]")
    plan = plan_text(tmp_path, text)
    assert plan.recipe.swept == ["lr", "alpha"]
    scalar = {}
    for lr in (0.002, 0.004):
        for alpha in (0.5, 0.75):
            one = GOOD.replace("lr = 0.002", f"lr = {lr}").replace("alpha = 0.75", f"alpha = {alpha}")
            scalar[(lr, alpha)] = {j.key for j in plan_text(tmp_path, one, f"s{lr}-{alpha}.toml").jobs}
    assert {j.key for j in plan.jobs} == set().union(*scalar.values())
    for job in plan.jobs:  # each role's point is a scalar recipe that plans this very job
        assert job.roles and all(job.key in scalar[(r["grid"]["lr"], r["grid"]["alpha"])] for r in job.roles)
    # [train] lr changes the GT jobs of a and c (per seed and lr); b sets its own lr, so its GT jobs
    # serve both values; alpha changes no GT job
    gt = [j for j in plan.jobs if j.kind == "gt"]
    assert sorted(len({r["grid"]["lr"] for r in j.roles}) for j in gt) == [1] * 8 + [2] * 2
    assert {j.model for j in gt if len({r["grid"]["lr"] for r in j.roles}) == 2} == {"b"}
    assert len(gt) == 2 * 2 * 2 + 1 * 2  # (a, c) x seeds x lr + b x seeds


def test_an_alpha_sweep_shares_every_job_alpha_does_not_change(tmp_path):
    scalar = plan_text(tmp_path, GOOD, "scalar.toml")
    plan = plan_text(tmp_path, GOOD.replace("alpha = 0.75", "alpha = [0.5, 0.75]"))
    assert plan.recipe.swept == ["alpha"]
    same = [j for j in scalar.jobs if j.method != "logconf"]
    keys = {j.key: j for j in plan.jobs}
    assert all(j.key in keys for j in same)  # GT, xent and the chain keep their keys and run once
    for job in same:
        assert sorted(r["grid"]["alpha"] for r in keys[job.key].roles) == sorted(
            [0.5, 0.75] * len(job.roles)
        )  # one role per point: each point's table finds them
    logconf = [j for j in plan.jobs if j.method == "logconf"]
    assert len(logconf) == 2 * len([j for j in scalar.jobs if j.method == "logconf"])
    assert {j.spec["loss"]["params"]["alpha"] for j in logconf} == {0.5, 0.75}
    assert len(plan.jobs) == len(scalar.jobs) + len(logconf) // 2


def test_the_dry_run_says_the_points_and_the_jobs_the_grid_adds(tmp_path):
    plan = build_plan(load_recipe(SMOKE_GRID))
    single = len(build_plan(plan.recipe.points[0]).jobs)
    lines = describe_plan(plan)
    assert lines[1].startswith(f"grid: {len(plan.recipe.points)} points (lr [")
    assert f": {len(plan.jobs)} jobs, {len(plan.jobs) - single} more than one point's {single}" in lines[1]
    assert len(plan.recipe.points) == 4 and len(plan.jobs) < 4 * single  # shared jobs planned once
    gt_lines = [line for line in lines if " gt " in line]
    assert gt_lines and all(re.search(r"\[lr=[0-9.]+\]", line) and "alpha" not in line for line in gt_lines)


def test_model_and_method_overrides_sweep_and_ambiguous_names_are_qualified(tmp_path):
    text = GOOD.replace("lr = 0.005", "lr = [0.005, 0.01]").replace(
        'loss = "logconf"\nalpha = 0.75', 'loss = "logconf"\nalpha = 0.75\nlr = [0.001, 0.003]'
    )
    recipe = load_recipe(write(tmp_path, text))
    assert recipe.swept == ["models.b.lr", "transfer.logconf.lr"]
    assert {p.model("b")["lr"] for p in recipe.points} == {0.005, 0.01}
    assert {p.transfers[1]["train"]["lr"] for p in recipe.points} == {0.001, 0.003}
    roles = [r for j in build_plan(recipe).jobs for r in j.roles]
    assert {tuple(sorted(r["grid"])) for r in roles} == {("models.b.lr", "transfer.logconf.lr")}


def test_a_suite_sweeps_a_task_key_named_by_its_task(tmp_path):
    suite = """
seeds = [0]
[train]
lr = [0.001, 0.002]
[[task]]
name = "one"
models = ["tiny-random-bert", "tiny-random-gpt2"]
[task.data]
name = "synthetic"
n_train = 100
n_test = 50
[task.train]
epochs = [1, 2]
"""
    recipe = load_recipe(write(tmp_path, suite))
    assert recipe.is_suite and recipe.swept == ["lr", "epochs"]
    assert [a.qualified for a in recipe.axes] == ["train.lr", "task.one.train.epochs"]
    roles = [r for j in build_plan(recipe).jobs for r in j.roles]
    assert all(r["task"] == "one" and set(r["grid"]) == {"lr", "epochs"} for r in roles)


# --- bad values and lists where no grid is allowed ----------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("lr = 0.002", "lr = [0.002, -1]", "train.lr[1]: expected a positive number, got -1"),
        ("lr = 0.005", "lr = [0.005, 0.005]", "models[1].lr[1]: 0.005 is already in the list"),
        ("lr = 0.002", "lr = []", "train.lr: an empty list"),
        ("epochs = 1", 'epochs = [1, "two"]', "train.epochs[1]: expected a positive number, got 'two'"),
        ("alpha = 0.75", "alpha = [0.5, 2]", "transfer[1].alpha[1]: loss 'logconf': parameter 'alpha' is 2"),
        ("lr = 0.002", "lr = [0.002, [0.1]]", "train.lr[1]: a grid's values are numbers, true/false or strings"),
    ],
)
def test_a_bad_value_in_a_list_names_its_index(tmp_path, old, new, expected):
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert expected in message and str(tmp_path / "r.toml") in message
    assert message.count("problem(s)") == 1 and "Traceback" not in message


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        ("n_train = 100", "n_train = [100, 200]", "data.n_train", "[data] is shared by every grid point"),
        ("epochs = 1", "epochs = 1\ncheckpoint_every = [0, 10]", "train.checkpoint_every", "changes no result"),
        ('path = "tiny-random-bert"', 'path = ["tiny-random-bert", "x"]', "models[0].path", "a model's identity"),
        ('loss = "xent"', 'loss = ["xent", "kl"]', "transfer[0].loss", "its own [[transfer]] table"),
        ('chain = ["a", "b", "c"]', 'chain = ["a", "b", "c"]\nrelabel = ["same"]', "bootstrap[0].relabel", "no grid"),
        ('name = "t"', 'name = "t"\n[launch]\nparallel = [1, 2]', "launch.parallel", "where jobs run"),
    ],
)
def test_a_list_where_no_grid_is_allowed_says_why(tmp_path, old, new, key, why):
    text = GOOD.replace(old, new, 1)
    if "[launch]" in new:  # a table must come after the top-level keys
        text = GOOD.replace(old, old, 1) + "\n[launch]\nparallel = [1, 2]\n"
    message = error_of(tmp_path, text)
    line = next(line for line in message.splitlines() if line.strip().startswith(f"- {key}"))
    assert "a list here is no grid" in line and why in line


def test_lists_by_design_are_no_grid(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))  # seeds = [0, 1], a chain
    assert recipe.axes == [] and recipe.seeds == [0, 1]


def test_a_problem_of_some_points_names_them(tmp_path):
    text = GOOD.replace("lr = 0.002", "lr = 0.002\nbatch_size = [32, 48]\nminibatch_size = 32\nfoo = 1")
    message = error_of(tmp_path, text)
    assert message.count("train.foo: unknown key") == 1 and "train.foo: unknown key (grid" not in message
    assert "batch_size 48 must be a multiple of minibatch_size 32 (grid point batch_size=48)" in message
    assert "batch_size 32 must" not in message and "problem(s)" in message


def test_a_grid_too_large_is_refused(tmp_path):
    values = ", ".join(str(i + 1) for i in range(40))
    text = GOOD.replace("epochs = 1", f"epochs = [{values}]\nmax_length = [{values}]")
    assert 40 * 40 > grid.MAX_POINTS
    assert f"more than {grid.MAX_POINTS}; sweep fewer values" in error_of(tmp_path, text)


# --- the pivot ----------------------------------------------------------------------------------


def row(method: str, pgr: float, **point) -> dict:
    return {"task": "t", "kind": "transfer", "weak": "a", "strong": "b", "method": method, "chain": None,
            "grid": point, "pgr_mean": pgr, **point}  # fmt: skip


def test_the_pivot_keeps_the_best_point_per_value_and_names_it():
    rows = [row("lc", 0.1, lr=2, alpha=0.5), row("lc", 0.4, lr=2, alpha=0.75), row("lc", float("nan"), lr=1, alpha=0.5),
            row("lc", -0.2, lr=1, alpha=0.75), row("xent", 0.3, lr=2), row("xent", 0.2, lr=1)]  # fmt: skip
    out = pivot(rows, "lr", ["lr", "alpha"], "r")
    assert [(r["method"], r["lr"], r["best_of"], r["pgr_mean"], r["points"]) for r in out] == [
        ("lc", 1, {"alpha": 0.75}, -0.2, 2),  # a point without PGR ranks last
        ("lc", 2, {"alpha": 0.75}, 0.4, 2),
        ("xent", 1, {}, 0.2, 1),
        ("xent", 2, {}, 0.3, 1),
    ]
    by_alpha = pivot(rows, "alpha", ["lr", "alpha"], "r")
    assert [(r["method"], r["grid"].get("alpha")) for r in by_alpha] == [("lc", 0.5), ("lc", 0.75), ("xent", None)]
    with pytest.raises(InputError, match="sweeps no key 'beta'; its grid sweeps lr, alpha"):
        pivot(rows, "beta", ["lr", "alpha"], "r")


# --- end to end: recipes/smoke-grid.toml through `w2s run`, once for the module -------------------


@pytest.fixture(scope="module")
def ran(tmp_path_factory, w2s_cache):
    results = tmp_path_factory.mktemp("grid-results")
    done = run_w2s(results, "run", str(SMOKE_GRID))
    assert done.returncode == 0, done.stdout + done.stderr
    return results


def results_json(results: Path, *args: str) -> list[dict]:
    done = run_w2s(results, "results", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def setup_of(row: dict) -> tuple:
    return row["weak"], row["strong"], row["method"]


def pgr_or_worst(row: dict) -> float:
    return -math.inf if row["pgr_mean"] is None else row["pgr_mean"]  # JSON writes NaN as null


def test_results_by_lr_has_one_row_per_lr_per_setup_with_the_best_alpha(ran):
    recipe = load_recipe(SMOKE_GRID)
    lrs = sorted({p.grid["lr"] for p in recipe.points})
    rows = results_json(ran, "--by", "lr")
    setups = {setup_of(r) for r in rows}
    assert setups == {(w, s, m["name"]) for w, s in recipe.pairs for m in recipe.transfers}
    for setup in setups:
        assert sorted(r["lr"] for r in rows if setup_of(r) == setup) == lrs
    every = results_json(ran)  # a row per grid point (the xent rows stand for both alphas: the same jobs)
    assert len(every) == len(recipe.points) + len(lrs) and all(r["grid"] for r in every)
    for r in rows:
        same = [t for t in every if setup_of(t) == setup_of(r) and t["grid"]["lr"] == r["lr"]]
        assert pgr_or_worst(r) == max(pgr_or_worst(t) for t in same) and r["points"] == len(same)
        assert r["best_of"] == {k: v for k, v in r["grid"].items() if k != "lr"}
        assert ("alpha" in r["best_of"]) == (r["method"] == "logconf")


def test_gt_jobs_ran_once_per_model_seed_and_lr_whatever_alpha(ran):
    recipe = load_recipe(SMOKE_GRID)
    with Store.open(ran, readonly=True) as store:
        jobs = store.jobs()
        roles = queries.recipe_rows(store, recipe.hash)
    assert all(j["status"] == "done" for j in jobs) and len(jobs) == len(build_plan(recipe).jobs)
    lrs = {p.grid["lr"] for p in recipe.points}
    gt = [j for j in jobs if j["kind"] == "gt"]
    assert len(gt) == len(recipe.models) * len(recipe.seeds) * len(lrs)  # alpha does not multiply them
    alphas = {p.grid["alpha"] for p in recipe.points}
    for job in gt:  # each served every alpha of its lr: one role per point
        points = [r["role"]["grid"] for r in roles if r["job_hash"] == job["hash"]]
        assert {p["alpha"] for p in points} == alphas and len({p["lr"] for p in points}) == 1
    assert len(list(ran.glob("jobs/*"))) == len(jobs)


def test_the_text_table_shows_the_swept_values_and_a_bad_key_names_them(ran):
    table = run_w2s(ran, "results").stdout
    head = next(line for line in table.splitlines() if line.startswith("weak"))
    assert head.split()[3:5] == ["alpha", "lr"]
    csv_rows = list(csv.DictReader(io.StringIO(run_w2s(ran, "results", "--csv").stdout)))
    assert {"lr", "alpha"} <= set(csv_rows[0]) and "grid" not in csv_rows[0]  # a column per swept key
    assert {r["alpha"] for r in csv_rows if r["method"] == "xent"} == {""}  # xent does not depend on alpha
    pivoted = run_w2s(ran, "results", "--by", "alpha").stdout
    assert "best of" in pivoted and "lr=" in pivoted
    bad = run_w2s(ran, "results", "--by", "beta")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "sweeps no key 'beta'; its grid sweeps alpha, lr" in bad.stderr


def test_the_results_screen_shows_the_grid_and_cycles_the_pivot(ran, settle):
    async def body():
        app = W2SApp(ran, start="results")
        async with app.run_test(size=(180, 50)) as pilot:
            await settle(pilot)
            table = app.screen.query_one(PgrTable)
            head = [str(c.label) for c in table.columns.values()]
            assert head[3:5] == ["alpha", "lr"] and table.row_count == len(results_json(ran))
            assert app.screen.check_action("pivot", ()) and "pivot none (b)" in screen_text(app)
            for by in ("alpha", "lr"):  # none -> each swept key -> none
                await pilot.press("b")
                await settle(pilot)
                head = [str(c.label) for c in table.columns.values()]
                assert head[3:5] == [by, "best of"] and table.row_count == len(results_json(ran, "--by", by))
                assert f"pivot {by} (b)" in screen_text(app)
            await pilot.press("b")
            await settle(pilot)
            assert [str(c.label) for c in table.columns.values()][3:5] == ["alpha", "lr"]

    asyncio.run(body())


def test_the_results_screen_says_which_grid_point_is_missing_and_why():
    from w2s_tui.screens.results import missing_notes

    def job(status: str, role: str, lr: float, **more) -> dict:
        return {"status": status, "role": {"role": role, "seed": 0, "grid": {"lr": lr}, **more}}

    planned = [
        *(job("done", "gt", 1, model=m) for m in ("a", "b")),
        job("done", "transfer", 1, weak="a", strong="b", method="xent"),
        job("failed", "gt", 2, model="a"),
        job("done", "gt", 2, model="b"),
        job("skipped", "transfer", 2, weak="a", strong="b", method="xent"),
    ]
    rows = [{**row("xent", 0.5, lr=1), "seeds": [0]}]
    notes = missing_notes(planned, rows)
    assert notes[1:] == ["a→b xent [lr=2]: not in the table: weak a failed (s0); transfer xent skipped (s0)"]
    assert notes[0].startswith("2 of 6 jobs not done")
