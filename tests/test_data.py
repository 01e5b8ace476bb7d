"""Dataset registry and splits: determinism, disjointness, local files, formatters, errors."""

import csv
import json
import os
import random
import subprocess
import sys

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from w2s_core.data import (
    DATASETS,
    SYNTHETIC_VOCAB,
    dataset_fingerprint,
    format_amazon_polarity,
    format_anthropic_hh,
    format_boolq,
    format_cosmos_qa,
    format_sciq,
    make_splits,
    synthetic,
    synthetic_pool,
)
from w2s_core.errors import InputError, W2SError

SYNTH = {"name": "synthetic", "n_total": 600, "n_train": 200, "n_test": 100, "seed": 7}


def as_tuples(splits):
    return {k: (s.texts, s.labels, s.ids) for k, s in splits.items()}


def write_records(path, rows):
    """Write rows (dicts) as .jsonl, .json, .csv or .parquet, by the path's extension."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


MIXED_LABELS = {1: [1, True, "1", "TRUE", "true"], 0: [0, False, "0", "False", "false"]}
STRING_LABELS = {1: ["1", "TRUE", "true", "True", "1"], 0: ["0", "False", "false", "FALSE", "0"]}


def labelled_rows(n, positive_every=2, spellings=MIXED_LABELS):
    """Rows with custom column names and varied label spellings; label 1 on every `positive_every`th row."""
    return [
        {"sentence": f"example number {i}", "gold": spellings[int(i % positive_every == 0)][i % 5], "x": i}
        for i in range(n)
    ]


def local_cfg(path, **kw):
    return {"path": str(path), "text_column": "sentence", "label_column": "gold", "seed": 0, **kw}


# ---------------------------------------------------------------- determinism and disjointness


def test_splits_identical_in_a_fresh_process():
    here = as_tuples(make_splits(SYNTH, 3))
    code = (
        "import json; from w2s_core.data import make_splits, dataset_fingerprint as fp\n"
        f"s = make_splits({SYNTH!r}, 3)\n"
        f"print(json.dumps([{{k: [v.texts, v.labels, v.ids] for k, v in s.items()}}, fp({SYNTH!r})]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    there, fingerprint = json.loads(out.stdout)
    assert {k: tuple(v) for k, v in there.items()} == here
    assert fingerprint == dataset_fingerprint(SYNTH)
    assert as_tuples(make_splits(SYNTH, 3)) == here


def test_sizes_provenance_and_disjointness_with_own_test_pool():
    splits = make_splits(SYNTH, 0)
    train, test = synthetic_pool("train", 600, 0.05), synthetic_pool("test", 600, 0.0)
    assert [len(splits[k].ids) for k in "AB"] == [100, 100] and len(splits["test"].ids) == 100
    assert not set(splits["A"].ids) & set(splits["B"].ids)
    for key, pool in (("A", train), ("B", train), ("test", test)):
        s = splits[key]
        assert list(zip(s.texts, s.labels)) == [pool[i] for i in s.ids]


def test_held_out_test_pool_is_disjoint_from_a_and_b(tmp_path):
    path = write_records(tmp_path / "d.jsonl", labelled_rows(50))
    splits = make_splits(local_cfg(path, n_train=30, n_test=20), 1)
    ids = [set(splits[k].ids) for k in ("A", "B", "test")]
    assert [len(x) for x in ids] == [15, 15, 20]
    assert set.union(*ids) == set(range(50))  # disjoint and together the whole file


def test_test_pool_fixed_by_data_seed_and_halves_by_run_seed(tmp_path):
    path = write_records(tmp_path / "d.jsonl", labelled_rows(200))
    cfg = local_cfg(path, n_train=40, n_test=30)
    s1, s2 = make_splits(cfg, 1), make_splits(cfg, 2)
    assert s1["test"] == s2["test"]
    assert s1["A"].ids != s2["A"].ids and s1["B"].ids != s2["B"].ids
    other_data_seed = make_splits(local_cfg(path, n_train=40, n_test=30, seed=5), 1)
    assert other_data_seed["test"].ids != s1["test"].ids
    synth = [make_splits(SYNTH, seed) for seed in (1, 2)]
    assert synth[0]["test"] == synth[1]["test"] and synth[0]["A"] != synth[1]["A"]


# ---------------------------------------------------------------- local files


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "parquet"])
def test_local_file_round_trip_with_column_mapping(tmp_path, ext):
    rows = labelled_rows(40, 3, STRING_LABELS if ext == "parquet" else MIXED_LABELS)  # parquet: one type
    rows[5]["sentence"], rows[9]["sentence"] = "   ", ""  # blank texts are dropped
    path = write_records(tmp_path / f"d.{ext}", rows)
    splits = make_splits(local_cfg(path, n_train=28, n_test=10), 4)  # 38 usable rows: all of them
    expected = {i: (r["sentence"], int(i % 3 == 0)) for i, r in enumerate(rows)}
    seen = []
    for s in splits.values():
        assert list(zip(s.texts, s.labels)) == [expected[i] for i in s.ids]
        seen += s.ids
    assert sorted(seen) == [i for i in range(40) if i not in (5, 9)]
    with pytest.raises(InputError, match="n_train = 30.*28 examples"):
        make_splits(local_cfg(path, n_train=30, n_test=10), 4)


def test_balance_gives_exact_halves(tmp_path):
    path = write_records(tmp_path / "d.csv", labelled_rows(200, positive_every=5))  # 40 positives
    splits = make_splits(local_cfg(path, n_train=44, n_test=20, balance=True), 3)
    for key, n in (("A", 22), ("B", 22), ("test", 20)):
        assert len(splits[key].labels) == n and sum(splits[key].labels) == n // 2
    unbalanced = make_splits(local_cfg(path, n_train=44, n_test=20), 3)
    assert sum(unbalanced["A"].labels) != 11 or sum(unbalanced["B"].labels) != 11
    # 40 positives, 10 of them in test: balanced A+B can hold at most 2 * 30 examples
    make_splits(local_cfg(path, n_train=60, n_test=20, balance=True), 3)
    with pytest.raises(InputError, match="n_train = 62.*60 class-balanced"):
        make_splits(local_cfg(path, n_train=62, n_test=20, balance=True), 3)


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.jsonl.*path"):
        make_splits(local_cfg(tmp_path / "nope.jsonl", n_train=2, n_test=2), 0)
    with pytest.raises(InputError, match=r"nope\.jsonl"):
        dataset_fingerprint(local_cfg(tmp_path / "nope.jsonl"))


@pytest.mark.parametrize("key", ["text_column", "label_column"])
def test_missing_column_names_key_and_existing_columns(tmp_path, key):
    path = write_records(tmp_path / "cols.csv", labelled_rows(6))
    with pytest.raises(InputError) as err:
        make_splits(local_cfg(path, n_train=2, n_test=2, **{key: "missing"}), 0)
    assert all(s in str(err.value) for s in ("cols.csv", key, "'missing'", "sentence, gold, x"))


def test_non_binary_labels_show_up_to_five_values(tmp_path):
    rows = [{"sentence": f"t{i}", "gold": v} for i, v in enumerate([0, 1, 2, "yes", 3, 4, 5, 6, 2, 1])]
    path = write_records(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError, match="labels must be binary") as err:
        make_splits(local_cfg(path, n_train=2, n_test=2), 0)
    msg = str(err.value)
    assert "bad.jsonl" in msg and "'gold'" in msg and "label_column" in msg
    assert "2, 'yes', 3, 4, 5" in msg and "6" not in msg.split("e.g.")[1]


def test_too_many_examples_name_key_asked_and_available(tmp_path):
    path = write_records(tmp_path / "small.jsonl", labelled_rows(30))
    with pytest.raises(InputError, match=r"n_test = 31 .*small\.jsonl.*30 examples"):
        make_splits(local_cfg(path, n_train=2, n_test=31), 0)
    with pytest.raises(InputError, match=r"n_train = 22 .*small\.jsonl.*20 examples"):
        make_splits(local_cfg(path, n_train=22, n_test=10), 0)
    with pytest.raises(InputError, match="n_train = 700 .*synthetic.*600 examples.*n_total"):
        make_splits({**SYNTH, "n_train": 700}, 0)


def test_bad_extension_and_bad_json_and_unknown_name(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(InputError, match=r"d\.txt.*\.jsonl, \.json, \.csv, \.parquet"):
        make_splits(local_cfg(tmp_path / "d.txt", n_train=2, n_test=2), 0)
    (tmp_path / "broken.jsonl").write_text('{"sentence": "a", "gold": 1}\n{oops\n')
    with pytest.raises(InputError, match=r"broken\.jsonl, line 2"):
        make_splits(local_cfg(tmp_path / "broken.jsonl", n_train=2, n_test=2), 0)
    with pytest.raises(InputError, match="imdb.*sciq"):
        make_splits({"name": "imdb", "n_train": 2, "n_test": 2, "seed": 0}, 0)


# ---------------------------------------------------------------- Hugging Face datasets


def sciq_row(i):
    return {"question": f"q{i}?", "correct_answer": f"right{i}", "distractor1": f"d1-{i}",
            "distractor2": f"d2-{i}", "distractor3": f"d3-{i}", "support": ""}  # fmt: skip


def test_sciq_formatter_is_reproducible_and_fair():
    rng, results = random.Random(0), []
    for i in range(2000):
        text, label = format_sciq(sciq_row(i), rng)
        prefix = f"Q: q{i}? A: "
        assert text.startswith(prefix)
        answer = text[len(prefix) :]
        assert answer in {f"right{i}", f"d1-{i}", f"d2-{i}", f"d3-{i}"}
        assert label == (answer == f"right{i}")
        results.append((label, answer.split("-")[0]))
    assert 0.45 < sum(lab for lab, _ in results) / 2000 < 0.55
    assert {d for lab, d in results if not lab} == {"d1", "d2", "d3"}
    assert format_sciq(sciq_row(3), random.Random(9)) == format_sciq(sciq_row(3), random.Random(9))


def test_other_formatters():
    rng = random.Random(0)
    boolq = format_boolq({"passage": "P", "question": "is it?", "answer": True}, rng)
    assert boolq == ("Passage: P\nQuestion: is it?", 1)
    # joined by a space, as openai/weak-to-strong and EleutherAI/w2s do (a newline before issue 9)
    assert format_amazon_polarity({"title": "T", "content": "C", "label": 0}, rng) == ("T C", 0)
    cosmos = {"context": "ctx", "question": "why?", "answer0": "a", "answer1": "b", "answer2": "c",
              "answer3": "d", "label": 2}  # fmt: skip
    for _ in range(50):
        text, label = format_cosmos_qa(cosmos, rng)
        assert text.startswith("Context: ctx\nQuestion: why?\nAnswer: ") and label == text.endswith(": c")
    none_right = {**cosmos, "answer2": "None of the above choices ."}
    assert all(format_cosmos_qa(none_right, rng)[1] == 0 for _ in range(20))
    hh = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    for _ in range(20):
        text, label = format_anthropic_hh(hh, rng)
        assert text == (hh["chosen"] if label else hh["rejected"])


def test_hub_dataset_through_patched_loader(monkeypatch):
    calls = []

    def fake_load(hub_id, revision=None, split=None):
        calls.append((hub_id, revision, split))
        offset = 0 if split == "train" else 1000
        return [sciq_row(offset + i) for i in range(60)]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    cfg = {"name": "sciq", "n_train": 40, "n_test": 10, "seed": 0, "revision": "abc"}
    splits = make_splits(cfg, 1)
    assert calls == [("allenai/sciq", "abc", "train"), ("allenai/sciq", "abc", "test")]
    assert all(t.startswith("Q: q1") for t in splits["test"].texts)  # the hub's own test split
    for s in (splits["A"], splits["B"]):
        for text, label, i in zip(s.texts, s.labels, s.ids):
            assert text.startswith(f"Q: q{i}? A: ") and label == text.endswith(f"right{i}")
    assert make_splits(cfg, 1) == splits


def test_hub_failure_becomes_w2s_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'allenai/sciq' on the Hub\n(details)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(W2SError) as err:
        make_splits({"name": "sciq", "n_train": 4, "n_test": 2, "seed": 0}, 0)
    assert not isinstance(err.value, InputError)
    msg = str(err.value)
    assert all(s in msg for s in ("'sciq'", "allenai/sciq", "ConnectionError: Couldn't reach", "path ="))
    assert "(details)" not in msg


def test_registry_entries():
    expected = {"sciq": "test", "boolq": "validation", "amazon_polarity": "test",
                "cosmos_qa": "validation", "anthropic_hh": "test"}  # fmt: skip
    # + the EleutherAI/w2s breadth (data/eleuther.py), with the reference's split mapping
    expected |= {"anli-r2": "test_r2", "cola": "validation", "dream": "test", "mc_taco": "validation",
                 "hellaswag": "validation", "multirc": "validation", "openbookqa": "test", "paws": "test",
                 "piqa": "validation", "quail": "validation", "quartz": "test", "social_i_qa": "validation",
                 "sst2": "validation", "wic": "validation", "twitter-sentiment": "test", "sciq_with_support": "test",
                 **{f"ethics-{p}": "test" for p in ("deontology", "justice", "virtue", "utilitarianism")}}  # fmt: skip
    assert {n: i.test_split for n, i in DATASETS.items() if i.hub_id} == expected
    assert DATASETS["synthetic"].hub_id is None


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_tracks_content_not_sizes(tmp_path):
    path = write_records(tmp_path / "d.jsonl", labelled_rows(10))
    base = dataset_fingerprint(local_cfg(path, n_train=4, n_test=2))
    assert dataset_fingerprint(local_cfg(path, n_train=8, n_test=1, seed=3)) == base
    assert dataset_fingerprint(local_cfg(path, label_column="x")) != base
    assert dataset_fingerprint(local_cfg(path, balance=True)) != base
    write_records(path, labelled_rows(11))
    assert dataset_fingerprint(local_cfg(path)) != base
    synth = dataset_fingerprint(SYNTH)
    assert dataset_fingerprint({**SYNTH, "n_train": 10, "seed": 1}) == synth
    assert dataset_fingerprint({**SYNTH, "noise": 0.1}) != synth
    assert dataset_fingerprint({"name": "sciq", "revision": "v2"}) != dataset_fingerprint({"name": "sciq"})


# ---------------------------------------------------------------- synthetic task


def rule_label(text):
    """The synthetic rule, recomputed from the words: a negation flips the next word, an
    intensifier doubles it."""
    score, factor = 0.0, 1.0
    for word in text.split():
        if word in synthetic.NEGATIONS:
            factor = -1.0
        elif word in synthetic.INTENSIFIERS:
            factor = 2.0
        else:
            score += factor * synthetic.WEIGHTS.get(word, 0.0)
            factor = 1.0
    return int(score > 0)


def test_synthetic_vocab_and_rule():
    assert len(SYNTHETIC_VOCAB) <= 300 and len(set(SYNTHETIC_VOCAB)) == len(SYNTHETIC_VOCAB)
    assert all(w.isalpha() and w == w.lower() for w in SYNTHETIC_VOCAB)
    clean = synthetic_pool("train", 1000, 0.0)
    assert all(set(t.split()) <= set(SYNTHETIC_VOCAB) and 8 <= len(t.split()) <= 24 for t, _ in clean)
    assert all(label == rule_label(text) for text, label in clean)
    assert 0.35 < sum(y for _, y in clean) / 1000 < 0.65
    negated = sum(any(w in synthetic.NEGATIONS for w in t.split()) for t, _ in clean)
    assert 100 < negated < 600  # context matters in a real share of examples


def test_synthetic_noise_flips_labels_only_and_pools_differ():
    clean, noisy = synthetic_pool("train", 2000, 0.0), synthetic_pool("train", 2000, 0.2)
    assert [t for t, _ in clean] == [t for t, _ in noisy]
    flipped = sum(a != b for (_, a), (_, b) in zip(clean, noisy)) / 2000
    assert 0.17 < flipped < 0.23
    assert synthetic_pool("train", 50, 0.2) == noisy[:50]
    assert not {t for t, _ in synthetic_pool("test", 500, 0.0)} & {t for t, _ in clean[:500]}
    with pytest.raises(InputError, match="noise"):
        make_splits({**SYNTH, "noise": 0.7}, 0)
