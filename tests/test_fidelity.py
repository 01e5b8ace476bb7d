"""Issue 9 item 6, smaller fidelity items: amazon_polarity's text, per-method lr/epochs overrides,
explicit self-pairs, and logconf's `warmup = "reference"` schedule (openai/weak-to-strong loss.py)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from test_plan import plan_of
from test_recipe import GOOD, error_of, write

from w2s_core.analysis.pgr import pgr_summary, pgr_table
from w2s_core.analysis.table import format_table
from w2s_core.data import DATASETS
from w2s_core.data.hub import format_amazon_polarity
from w2s_core.spec.losses import alpha_at, loss_alpha, resolve_loss
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.training.losses import LOSSES, make_batch_target, make_loss


def keys_by_job(plan) -> dict[tuple, str]:
    return {(j.kind.value, j.model, j.weak_model, j.method, j.seed): j.key for j in plan.jobs}


# ---------------------------------------------------------------- amazon_polarity


def test_amazon_polarity_joins_title_and_content_with_a_space():
    # a row as the Hub's fancyzhx/amazon_polarity stores it (columns label, title, content)
    row = {"label": 1, "title": "Great CD", "content": "My lovely Pat has one of the GREAT voices of her generation."}
    text, label = format_amazon_polarity(row, random.Random(0))
    assert text == "Great CD My lovely Pat has one of the GREAT voices of her generation."
    assert label == 1 and "\n" not in text
    # the formatter's output changed, so its fingerprint (and every amazon_polarity job key) did too
    assert DATASETS["amazon_polarity"].identity({})["formatter_version"] == 2


# ---------------------------------------------------------------- per-method lr / epochs

OVERRIDE = GOOD.replace('loss = "logconf"\nalpha = 0.75', 'loss = "logconf"\nalpha = 0.75\nlr = 0.0001\nepochs = 4')


def test_transfer_overrides_reach_only_its_jobs(tmp_path):
    recipe = load_recipe(write(tmp_path, OVERRIDE))
    assert recipe.transfers[1]["train"] == {"lr": 0.0001, "epochs": 4}
    assert "train" not in recipe.transfers[0]  # a table without overrides resolves as before
    plan = build_plan(recipe)
    for job in plan.jobs:
        model = recipe.model(job.model)
        if job.method == "logconf":
            assert (job.spec["train"]["lr"], job.spec["train"]["epochs"]) == (0.0001, 4)
        else:
            assert (job.spec["train"]["lr"], job.spec["train"]["epochs"]) == (model["lr"], model["epochs"])


def test_changing_a_transfer_lr_changes_only_that_transfers_keys(tmp_path):
    before = keys_by_job(plan_of(tmp_path, GOOD))
    after = keys_by_job(plan_of(tmp_path, OVERRIDE))
    assert before.keys() == after.keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed and all(k[0] == "transfer" and k[3] == "logconf" for k in changed)
    assert len(changed) == sum(1 for k in before if k[3] == "logconf")
    # another lr for the same transfer: another key again
    other = keys_by_job(plan_of(tmp_path, OVERRIDE.replace("lr = 0.0001", "lr = 0.0002")))
    assert all(other[k] != after[k] for k in changed) and all(other[k] == after[k] for k in before if k not in changed)


def test_an_override_equal_to_the_models_setting_keeps_the_keys(tmp_path):
    # every model has [train] epochs = 1; a transfer's epochs = 1.0 is the same job, so the same key
    same = GOOD.replace('loss = "logconf"\nalpha = 0.75', 'loss = "logconf"\nalpha = 0.75\nepochs = 1.0')
    assert keys_by_job(plan_of(tmp_path, same)) == keys_by_job(plan_of(tmp_path, GOOD))


def test_bootstrap_overrides_reach_every_step(tmp_path):
    text = GOOD.replace('chain = ["a", "b", "c"]', 'chain = ["a", "b", "c"]\nepochs = 3')
    plan = plan_of(tmp_path, text)
    steps = [j for j in plan.jobs if any(r["role"] == "bootstrap" for r in j.roles)]
    assert len(steps) == 4 and all(j.spec["train"]["epochs"] == 3 for j in steps)  # 2 steps x 2 seeds
    assert all(j.spec["train"]["epochs"] == 1 for j in plan.jobs if j not in steps)
    # step 1 is no longer the pair's xent transfer a->b (it trains longer), so it is its own job
    assert all(len(j.roles) == 1 for j in steps)


@pytest.mark.parametrize(
    "line,key,fragment",
    [
        ("lr = -1", "transfer[1].lr", "expected a positive number, got -1"),
        ('epochs = "two"', "transfer[1].epochs", "expected a positive number, got 'two'"),
        ("transfer_lr = 1e-5", "transfer[1].transfer_lr", "did you mean 'lr'"),
        ("learning_rate = 1e-5", "transfer[1].learning_rate", "did you mean 'lr'"),
    ],
)
def test_bad_overrides_name_file_and_key(tmp_path, line, key, fragment):
    msg = error_of(tmp_path, GOOD.replace("alpha = 0.75", f"alpha = 0.75\n{line}"))
    assert "r.toml" in msg and key in msg and fragment in msg


def test_bad_bootstrap_override_names_its_key(tmp_path):
    msg = error_of(tmp_path, GOOD.replace('chain = ["a", "b", "c"]', 'chain = ["a", "b", "c"]\nlr = 0'))
    assert "bootstrap[0].lr" in msg and "positive number" in msg


# ---------------------------------------------------------------- self-pairs


def test_self_pair_plans_the_model_on_its_own_gt_labels(tmp_path):
    text = 'pairs = [["c", "c"]]\n' + GOOD
    recipe = load_recipe(write(tmp_path, text))
    assert recipe.pairs == [("c", "c")]
    plan = build_plan(recipe)
    gt = next(j for j in plan.jobs if j.kind == "gt" and j.model == "c" and j.seed == 0)
    selfs = [j for j in plan.jobs if j.kind == "transfer" and j.model == "c" and j.weak_model == "c" and j.seed == 0]
    assert len(selfs) == 2  # one per method
    for job in selfs:
        assert job.deps == [gt.key] and job.key != gt.key
        assert job.spec["train_split"] == "B" and job.spec["labels"] == {"from": gt.key, "split": "B"}
        assert job.spec["predict_split"] == "A" and gt.spec["predict_split"] == "B"
        assert job.roles[0]["weak"] == job.roles[0]["strong"] == "c"


def test_one_model_with_a_self_pair_is_a_valid_recipe(tmp_path):
    text = (
        'pairs = [["m", "m"]]\n[data]\nname = "synthetic"\nn_train = 100\nn_test = 50\n'
        '[[models]]\nname = "m"\npath = "tiny-random-gpt2"\n'
    )
    plan = plan_of(tmp_path, text)
    assert sorted(j.kind.value for j in plan.jobs) == ["gt", "transfer"]
    msg = error_of(tmp_path, text.replace('[["m", "m"]]', '[["q", "q"]]'))
    assert msg.count("unknown model 'q'") == 1  # reported once, not once per side


def test_self_pair_row_shows_pgr_na(tmp_path):
    recipe = "f" * 64
    with Store.open(tmp_path) as store:
        store.add_recipe(recipe, "self", "self.toml", "text")

        def add(name, kind, model, seed, role, acc):
            store.upsert_job(
                {"hash": name, "kind": kind, "model": model, "seed": seed, "spec": {}, "recipe_hash": recipe}
            )
            store.set_job_status(name, JobStatus.DONE)
            store.link_job(recipe, name, json.dumps(role))
            store.set_results(name, {"test_acc": acc, "test_auroc": acc, "n_test": 2000})

        for seed, (a, c) in enumerate([(0.60, 0.80), (0.62, 0.78)]):
            add(f"gt-a-{seed}", "gt", "a", seed, {"role": "gt", "model": "a", "seed": seed}, a)
            add(f"gt-c-{seed}", "gt", "c", seed, {"role": "gt", "model": "c", "seed": seed}, c)
            for weak, acc in (("c", c - 0.01), ("a", 0.70)):
                add(
                    f"t-{weak}c-{seed}",
                    "transfer",
                    "c",
                    seed,
                    {"role": "transfer", "weak": weak, "strong": "c", "method": "xent", "seed": seed},
                    acc,
                )
        rows = pgr_table(store, recipe)
        text = format_table(rows, pgr_summary(store, recipe))
    own = next(r for r in rows if r["weak"] == "c")
    assert math.isnan(own["pgr_mean"]) and own["n_valid"] == 0 and own["warnings"] == []
    assert own["w2s_acc"] == pytest.approx(0.78) and own["ceiling_acc"] == own["weak_acc"] == pytest.approx(0.79)
    line = next(line for line in text.splitlines() if line.startswith("c "))
    assert line.split()[6:8] == ["n/a", "n/a"] and "nan" not in text
    other = next(r for r in rows if r["weak"] == "a")
    assert other["pgr_mean"] == pytest.approx(0.5) and other["n_valid"] == 2


# ---------------------------------------------------------------- logconf warm-up schedules


@pytest.mark.parametrize(
    "step_frac,linear,reference",
    [
        (0.0, 0.0, 0.0),
        (0.05, 0.25, 0.025),  # linear: 0.5 * 0.05/0.1; reference: 0.5 * 0.05
        (0.1, 0.5, 0.05),  # reference: step_frac == warmup_frac is still "not > warmup_frac"
        (0.10001, 0.5, 0.5),  # reference: the jump to alpha
        (0.5, 0.5, 0.5),
        (1.0, 0.5, 0.5),
    ],
)
def test_warmup_schedules_by_hand(step_frac, linear, reference):
    assert alpha_at(step_frac, 0.5, 0.1) == pytest.approx(linear)
    assert alpha_at(step_frac, 0.5, 0.1, "linear") == pytest.approx(linear)
    assert alpha_at(step_frac, 0.5, 0.1, "reference") == pytest.approx(reference)


def test_reference_warmup_defaults_to_the_reference_warmup_frac():
    assert resolve_loss("logconf", {"warmup": "reference"}) == {"alpha": 0.5, "warmup_frac": 0.1, "warmup": "reference"}
    assert resolve_loss("logconf", {"warmup": "reference", "warmup_frac": 0.3})["warmup_frac"] == 0.3
    assert resolve_loss("logconf", {"warmup": "linear"})["warmup_frac"] == 0.2
    assert loss_alpha("logconf", {"warmup": "reference"}, 0.08) == pytest.approx(0.04)
    assert loss_alpha("logconf", {"warmup": "reference"}, 0.15) == pytest.approx(0.5)
    assert loss_alpha("logconf", {}, 0.15) == pytest.approx(0.375)  # the default stays linear over 0.2


def test_reference_warmup_reaches_the_training_loss():
    assert make_loss("logconf", {"warmup": "reference"}).keywords == {
        "alpha": 0.5,
        "warmup_frac": 0.1,
        "warmup": "reference",
    }
    probs1 = torch.tensor([0.9, 0.1])
    weak = torch.full((2, 2), 0.5)  # share 0.5: the more confident example is hardened to class 1
    target = make_batch_target("logconf", {"warmup": "reference"})(probs1, weak, 0.08)
    a = 0.5 * 0.08
    assert target[0, 1].item() == pytest.approx(0.5 * (1 - a) + a)
    assert target[1, 1].item() == pytest.approx(0.5 * (1 - a))
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    got = make_loss("logconf", {"warmup": "reference"})(logits, weak, 0.08).item()
    logp = torch.log_softmax(logits, dim=-1)
    assert got == pytest.approx(-(target * logp).sum(dim=-1).mean().item(), rel=1e-6)
    import inspect

    assert "warmup" in inspect.signature(LOSSES["logconf"]).parameters


@pytest.mark.parametrize(
    "line,fragments",
    [
        ('warmup = "cosine"', ["transfer[1]", "'warmup'", "'cosine'", "'linear', 'reference'"]),
        ("warmup = 1", ["transfer[1]", "'warmup'", "'linear', 'reference'"]),
    ],
)
def test_bad_warmup_is_a_recipe_error(tmp_path, line, fragments):
    msg = error_of(tmp_path, GOOD.replace("alpha = 0.75", f"alpha = 0.75\n{line}"))
    assert "r.toml" in msg and all(f in msg for f in fragments), msg


def test_warmup_on_a_loss_without_it_is_an_unknown_key(tmp_path):
    msg = error_of(tmp_path, GOOD.replace('loss = "xent"', 'loss = "xent"\nwarmup = "reference"', 1))
    assert "transfer[0].warmup" in msg and "unknown key" in msg


def test_default_warmup_keeps_job_keys_and_reference_changes_only_logconf(tmp_path):
    base = keys_by_job(plan_of(tmp_path, GOOD))
    explicit = GOOD.replace("alpha = 0.75", 'alpha = 0.75\nwarmup = "linear"')
    assert keys_by_job(plan_of(tmp_path, explicit)) == base
    ref = keys_by_job(plan_of(tmp_path, GOOD.replace("alpha = 0.75", 'alpha = 0.75\nwarmup = "reference"')))
    assert {k for k in base if base[k] != ref[k]} == {k for k in base if k[3] == "logconf"}
