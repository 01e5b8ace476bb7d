"""Long inputs (issue 9 item 4): `[data] long_inputs = "drop" | "truncate_left" | "truncate_right"`.

A local dataset mixes short texts with texts too long for one or both tiny models; the tiny
tokenizers are word-level, so a text of w words is w+1 tokens for tiny-random-gpt2 ([BOS] ...) and
w+2 for tiny-random-bert ([CLS] ... [SEP]). With gpt2 at max_length 16 and bert at 12, a text of
more than 10 words is too long for bert, and of more than 15 for both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_w2s

from w2s_core import cli
from w2s_core.data import SYNTHETIC_VOCAB, Split, make_splits
from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import JobDir, Result
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.store import Store
from w2s_core.training.lengths import align_upstream, drop_long_inputs, too_long
from w2s_core.training.models import encode, load_tokenizer

GPT2_MAX, BERT_MAX = 16, 12
# words per row, cycling: too long for both, too long for bert only, exactly bert's limit, short
WORDS = (20, 11, 10, 4)
N_ROWS = 96


def words_of(row: int) -> int:
    return WORDS[row % len(WORDS)]


def too_long_for_some_model(text: str) -> bool:
    words = len(text.split())
    return words + 1 > GPT2_MAX or words + 2 > BERT_MAX


def rows() -> list[dict]:
    """Texts from the tiny models' vocabulary (so nothing is [UNK]), labels alternating."""
    vocab = [w.lower() for w in SYNTHETIC_VOCAB]
    return [
        {"text": " ".join(vocab[(row * 7 + k) % len(vocab)] for k in range(words_of(row))), "label": (row // 4) % 2}
        for row in range(N_ROWS)
    ]


def recipe_text(long_inputs: str | None = "drop", extra_model: str = "") -> str:
    mode = f'long_inputs = "{long_inputs}"\n' if long_inputs else ""
    return f"""
name = "long"
seeds = [0]
[data]
path = "long.jsonl"
n_train = 48
n_test = 32
{mode}
[train]
epochs = 1
lr = 0.01
batch_size = 8
minibatch_size = 8
[[models]]
name = "weak"
path = "tiny-random-gpt2"
max_length = {GPT2_MAX}
tiny = {{ hidden_size = 16, num_layers = 1 }}
[[models]]
name = "strong"
path = "tiny-random-bert"
max_length = {BERT_MAX}
tiny = {{ hidden_size = 16, num_layers = 1 }}
{extra_model}
"""


@pytest.fixture
def recipe_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    return tmp_path


def plan_of(folder: Path, text: str):
    (folder / "r.toml").write_text(text)
    return build_plan(load_recipe(folder / "r.toml"))


# --- planning -------------------------------------------------------------------------------


def test_drop_is_the_default_and_filters_by_every_model(recipe_dir):
    plan = plan_of(recipe_dir, recipe_text(long_inputs=None))
    assert plan.recipe.data["long_inputs"] == "drop"
    for job in plan.jobs:  # every job, whatever its own model, filters by both models
        assert [(e["name"], e["path"], e["max_length"]) for e in job.spec["length_filter"]] == [
            ("strong", "tiny-random-bert", BERT_MAX),
            ("weak", "tiny-random-gpt2", GPT2_MAX),
        ]
    assert plan.jobs == plan_of(recipe_dir, recipe_text("drop")).jobs


def test_an_unknown_mode_is_named(recipe_dir):
    with pytest.raises(InputError, match=r"data\.long_inputs.*'cut'"):
        plan_of(recipe_dir, recipe_text("cut"))


def test_adding_a_model_changes_every_drop_mode_key_but_no_truncate_key(recipe_dir):
    third = '[[models]]\nname = "third"\npath = "tiny-random-bert"\nmax_length = 8\n'
    for mode, changes in (("drop", True), ("truncate_left", False), ("truncate_right", False)):
        before = {(j.kind, j.model, j.weak_model): j.key for j in plan_of(recipe_dir, recipe_text(mode)).jobs}
        after = {(j.kind, j.model, j.weak_model): j.key for j in plan_of(recipe_dir, recipe_text(mode, third)).jobs}
        shared = before.keys() & after.keys()
        assert len(shared) == 3
        assert all((before[k] != after[k]) == changes for k in shared), mode


def test_renaming_a_model_keeps_drop_mode_keys(recipe_dir):
    """The filter is hashed by what the tokenizers are, not by the names the recipe gives the models."""
    keys = [j.key for j in plan_of(recipe_dir, recipe_text()).jobs]
    renamed = plan_of(recipe_dir, recipe_text().replace('name = "weak"', 'name = "small"'))
    assert [e["name"] for e in renamed.jobs[0].spec["length_filter"]] == ["small", "strong"]  # another order
    assert [j.key for j in renamed.jobs] == keys


def test_truncate_modes_spec(recipe_dir):
    right = plan_of(recipe_dir, recipe_text("truncate_right"))
    left = plan_of(recipe_dir, recipe_text("truncate_left"))
    drop = plan_of(recipe_dir, recipe_text("drop"))
    for job in right.jobs:  # exactly the spec w2s wrote before the option existed
        assert "length_filter" not in job.spec and "long_inputs" not in job.spec["data"]
    assert all(j.spec["data"]["long_inputs"] == "truncate_left" and "length_filter" not in j.spec for j in left.jobs)
    keys = [{j.key for j in p.jobs} for p in (right, left, drop)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


# --- encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["tiny-random-gpt2", "tiny-random-bert"])
def test_truncate_left_keeps_the_tail_and_special_tokens(recipe_dir, path):
    tok = load_tokenizer({"name": path, "path": path})
    text = rows()[0]["text"]  # 20 words
    full = tok(text)["input_ids"]
    specials_front, specials_end = (1, 0) if path == "tiny-random-gpt2" else (1, 1)
    assert len(full) == 20 + specials_front + specials_end
    (left,) = encode(tok, [text], 8, side="left")
    keep = 8 - specials_front - specials_end
    # [BOS] / [CLS] stays in front, [SEP] at the end; the text's LAST words are kept
    body = full[specials_front : len(full) - specials_end]
    assert left[:specials_front] == full[:specials_front]
    assert left[specials_front : len(left) - specials_end] == body[-keep:]
    assert left[len(left) - specials_end :] == full[len(full) - specials_end :]
    (right,) = encode(tok, [text], 8)
    assert right[specials_front : len(right) - specials_end] == body[:keep]
    assert tok.truncation_side == "right"  # encode leaves the shared tokenizer as it found it


@pytest.mark.parametrize("path", ["tiny-random-gpt2", "tiny-random-bert"])
def test_truncate_right_is_the_old_encoding(recipe_dir, path):
    tok = load_tokenizer({"name": path, "path": path})
    texts = [r["text"] for r in rows()[:8]] + [""]
    old = [seq or [tok.eos_token_id] for seq in tok(texts, truncation=True, max_length=9)["input_ids"]]
    assert encode(tok, texts, 9) == encode(tok, texts, 9, side="right") == old
    assert any(len(tok(t)["input_ids"]) > 9 for t in texts)  # the comparison really truncated something


# --- dropping in the job --------------------------------------------------------------------


def test_drop_removes_what_is_too_long_for_any_model_from_every_split(recipe_dir):
    plan = plan_of(recipe_dir, recipe_text())
    job = next(j for j in plan.jobs if j.kind == "gt" and j.model == "weak").spec
    drawn = make_splits(job["data"], 0)
    kept, dropped = drop_long_inputs(job, drawn)
    for name in ("A", "B", "test"):
        expect = [i for i, t in enumerate(drawn[name].texts) if not too_long_for_some_model(t)]
        assert kept[name].positions == expect and kept[name].texts == [drawn[name].texts[i] for i in expect]
        assert dropped[Result.n_dropped(name)] == len(drawn[name].texts) - len(expect) > 0
        # some of them fit the weak model: it loses them only because the strong model cannot read them
        bert_only = [t for t in drawn[name].texts if len(t.split()) == 11]
        assert bert_only and not any(t in kept[name].texts for t in bert_only)
        # an input exactly at the limit is kept: drop removes exactly what truncation would cut
        assert any(len(t.split()) == 10 for t in kept[name].texts)
    weak, strong = job["length_filter"][1], job["length_filter"][0]
    assert not too_long(weak, ["w " * 11]) and too_long(strong, ["w " * 11]) == {0}
    assert drop_long_inputs({**job, "data": {**job["data"], "long_inputs": "truncate_left"}}, drawn) == (drawn, {})


def test_drop_needs_every_models_tokenizer(recipe_dir):
    """In drop mode a model whose tokenizer cannot load fails every job, saying which model and what to do."""
    broken = recipe_dir / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    extra = f'[[models]]\nname = "broken"\npath = "{broken}"\n'
    job = next(j for j in plan_of(recipe_dir, recipe_text("drop", extra)).jobs if j.model == "weak").spec
    with pytest.raises(W2SError, match="model 'broken' failed: .*could not load.*truncate_right"):
        drop_long_inputs(job, make_splits(job["data"], 0))


def test_upstream_predictions_are_matched_by_position():
    split = Split(["a", "b", "c", "d"], [0, 1, 0, 1], [10, 11, 12, 13]).keep([0, 2, 3])
    assert split.positions == [0, 2, 3] and split.ids == [10, 12, 13]
    job = {"labels": {"from": "f" * 64, "split": "B"}}
    up = {"B": {"probs": [0.1, 0.3, 0.4], "labels": [0, 0, 1], "index": [0, 2, 3]}}
    assert align_upstream(up, {"B": split}, job)["B"]["probs"] == [0.1, 0.3, 0.4]
    whole = {"B": {"probs": [0.1, 0.2, 0.3, 0.4], "labels": [0, 1, 0, 1]}}  # an entry without "index"
    assert align_upstream(whole, {"B": split}, job)["B"]["probs"] == [0.1, 0.3, 0.4]
    with pytest.raises(W2SError, match="fffffffff.*no prediction for 1 of the 3 .*position 3"):
        align_upstream({"B": {**up["B"], "probs": [0.1, 0.3], "index": [0, 2]}}, {"B": split}, job)


def test_store_keeps_positions(tmp_path):
    with Store.open(tmp_path) as store:
        store.add_predictions("j", "test", [0.2, 0.9], [0, 1], index=[1, 4])
        assert store.predictions("j", "test") == ([0.2, 0.9], [0, 1])
        rows_ = store.db.query("SELECT idx FROM predictions WHERE job_hash = 'j' ORDER BY idx")
        assert [r["idx"] for r in rows_] == [1, 4]
        with pytest.raises(ValueError, match="positions"):
            store.add_predictions("j", "test", [0.2, 0.9], [0, 1], index=[1])


# --- the dry run and a real run -------------------------------------------------------------


def expected_counts(plan) -> dict:
    drawn = make_splits(plan.recipe.data, 0)
    return {name: sum(map(too_long_for_some_model, s.texts)) for name, s in drawn.items()}


def test_dry_run_prints_the_counts(recipe_dir, capsys):
    plan = plan_of(recipe_dir, recipe_text())
    counts = expected_counts(plan)
    assert cli.main(["--results-dir", str(recipe_dir / "res"), "run", str(recipe_dir / "r.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"test {counts['test']} of 32" in out
    assert f"seed 0: A {counts['A']} of 24, B {counts['B']} of 24" in out
    (recipe_dir / "r.toml").write_text(recipe_text("truncate_left"))
    assert cli.main(["--results-dir", str(recipe_dir / "res"), "run", str(recipe_dir / "r.toml"), "--dry-run"]) == 0
    assert "keeping their end" in capsys.readouterr().out


def test_dry_run_says_unknown_when_a_tokenizer_cannot_load(recipe_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = '[[models]]\nname = "hub"\npath = "w2s-no-such-org/no-such-model"\n'
    plan_of(recipe_dir, recipe_text("drop", hub))
    assert cli.main(["--results-dir", str(recipe_dir / "res"), "run", str(recipe_dir / "r.toml"), "--dry-run"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("dropped")]
    assert line.startswith("dropped: unknown (") and "no-such-model" in line


def test_a_run_drops_the_same_examples_in_every_job(recipe_dir):
    plan = plan_of(recipe_dir, recipe_text())
    counts = expected_counts(plan)
    results = recipe_dir / "res"
    done = run_w2s(results, "run", str(recipe_dir / "r.toml"), env={"W2S_CACHE": os.environ["W2S_CACHE"]})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    n_test = 32 - counts["test"]
    with Store.open(results, readonly=True) as store:
        jobs = store.jobs()
        assert len(jobs) == 3
        for job in jobs:
            res = JobDir(Path(job["dir"])).read_result()
            assert res[Result.N_TEST] == n_test  # one test pool for every model
            assert {s: res[Result.n_dropped(s)] for s in ("A", "B", "test")} == counts
            preds = JobDir(Path(job["dir"])).read_predictions()
            drawn = make_splits(plan.recipe.data, 0)
            for name, p in preds.items():
                assert p["index"] == [i for i, t in enumerate(drawn[name].texts) if not too_long_for_some_model(t)]
                assert len(p["probs"]) == len(p["labels"]) == len(p["index"])
            probs, _ = store.predictions(job["hash"], "test")
            assert len(probs) == n_test
    text = run_w2s(results, "results").stdout
    assert (
        f"long: dropped (inputs longer than some model's max_length, left out for every model): test "
        f"{counts['test']}; seed 0: A {counts['A']}, B {counts['B']}" in text
    )
    (row,) = json.loads(run_w2s(results, "results", "--json").stdout)
    assert row[Result.n_dropped("test")] == counts["test"]
