"""Hub datasets: every formatter on fixture rows, the Parquet fallback for script-based repos at the
`load_dataset` boundary, fingerprints, `w2s datasets`, and the presets' dry runs.

The fixture rows (tests/fixtures/datasets/*.jsonl): each file's first line says whether its rows were
recorded (and from where: a release file or a verbatim copy in a public repository, with any mapping to
the Hub's schema) or written from the card (the Hub itself is unreachable here).
"""

import json
import random
from pathlib import Path

import datasets
import pytest
from conftest import ROOT, run_w2s

from w2s_core import cli
from w2s_core.data import DATASETS, dataset_fingerprint, make_splits
from w2s_core.data.hub import HUB_SOURCES, LOADS, PARQUET_REVISION, SCRIPT_ERROR
from w2s_core.errors import W2SError
from w2s_core.spec.plan import build_plan, describe_plan
from w2s_core.spec.recipe import load_recipe

FIXTURES = ROOT / "tests" / "fixtures" / "datasets"


def fixture(name: str) -> tuple[dict, list[dict]]:
    lines = [json.loads(x) for x in (FIXTURES / f"{name}.jsonl").read_text().splitlines() if x.strip()]
    return lines[0]["_fixture"], lines[1:]


def _formatter(name: str):
    """hub_entry keeps the formatter in its closure; fetch it by the loader's closure cells."""
    load = DATASETS[name].load
    cells = dict(zip(load.__code__.co_freevars, (c.cell_contents for c in load.__closure__)))
    return cells["formatter"]


def test_every_hub_entry_has_fixture_rows_with_a_source():
    assert len(DATASETS) >= 20
    for name, src in HUB_SOURCES.items():
        meta, rows = fixture(name)
        assert meta["hub_id"] == src.hub_id and meta["source"] and rows, name


# Deterministic formatters: the reference's exact text (EleutherAI/w2s@a929af0 w2s/ds_registry.py).
EXACT = {
    "cola": lambda r: r["sentence"],
    "sst2": lambda r: r["sentence"],
    "twitter-sentiment": lambda r: r["text"],
    "boolq": lambda r: f"Passage: {r['passage']}\nQuestion: {r['question']}",
    "amazon_polarity": lambda r: f"{r['title']} {r['content']}",
    "anli-r2": lambda r: (
        f"Premise: {r['premise']}\nHypothesis: {r['hypothesis']}\n\nDoes the premise entail the hypothesis?"
    ),
    "ethics-deontology": lambda r: (
        f"Q: Is the following a morally valid excuse?\n\n{r['scenario']}\n\n{r['excuse']}\n\nA:"
    ),
    "ethics-justice": lambda r: f"Q: Does this statement exemplify justice?\n\n{r['scenario']}\n\nA:",
    "ethics-virtue": lambda r: f"Q: Does this behavior match the adjective that follows?\n\n{r['scenario']}\n\nA:",
    "mc_taco": lambda r: f"{r['sentence']}\n\nGiven the above, {r['question']} Is the answer {r['answer']}?",
    "multirc": lambda r: f'Passage:\n\n{r["paragraph"]}\n\nQ: "{r["question"]}" Is the answer "{r["answer"]}"?',
    "paws": lambda r: (
        f"Sent 1: {r['sentence1']}\nSent 2: {r['sentence2']}\n\nQ: Are these sentences semantically equivalent?"
    ),
    "wic": lambda r: (
        f'Sentence 1:\n{r["sentence1"]}\n\nSentence 2:\n{r["sentence2"]}\n\nQ: Does "{r["word"]}" have '
        "the same meaning in the above sentences?"
    ),
}
LABEL = {"anli-r2": lambda r: int(r["label"] == 0), "boolq": lambda r: int(r["answer"])}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_label_preserving_formatters(name):
    _, rows = fixture(name)
    for row in rows:
        text, label = _formatter(name)(row, random.Random(0))
        assert text == EXACT[name](row)
        assert label == LABEL.get(name, lambda r: int(r["label"]))(row)
    if name == "anli-r2":  # entailment is the positive class; neutral and contradiction are not
        assert [_formatter(name)(r, random.Random(0))[1] for r in rows] == [1, 0, 0, 1, 0, 0]  # e n c e n c


def _correct(name: str, r: dict) -> tuple[str, list[str]]:
    """(the correct answer, all answers) of a multiple-choice row."""
    if name in ("sciq", "sciq_with_support"):
        return r["correct_answer"], [r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]]
    table = {
        "cosmos_qa": lambda: ([r[f"answer{i}"] for i in range(4)], int(r["label"])),
        "dream": lambda: (r["choice"], r["choice"].index(r["answer"])),
        "hellaswag": lambda: (r["endings"], int(r["label"])),
        "openbookqa": lambda: (r["choices"]["text"], r["choices"]["label"].index(r["answerKey"])),
        "piqa": lambda: ([r["sol1"], r["sol2"]], int(r["label"])),
        "quail": lambda: (r["answers"], r["correct_answer_id"]),
        "quartz": lambda: (r["choices"]["text"], r["choices"]["label"].index(r["answerKey"])),
        "social_i_qa": lambda: ([r["answerA"], r["answerB"], r["answerC"]], int(r["label"]) - 1),
    }
    answers, i = table[name]()
    return answers[i], answers


# Where each multiple-choice prompt shows the answer it asks about: text ends with prefix + answer + suffix.
SLOT = {
    "sciq": (" A: ", ""),
    "sciq_with_support": ('Is the answer "', '"?'),
    "cosmos_qa": ("\nAnswer: ", ""),
    "dream": (" A: ", ""),
    "hellaswag": ('Q: Is "', '" the best continuation?'),
    "openbookqa": ("\n\nAnswer: ", ""),
    "piqa": (" A: ", ""),
    "quail": ('Is the answer "', '"?'),
    "quartz": ('Is the answer "', '"?'),
    "social_i_qa": ('Is the answer "', '"?'),
}


@pytest.mark.parametrize("name", sorted(SLOT))
def test_multiple_choice_becomes_answer_or_distractor(name):
    _, rows = fixture(name)
    prefix, suffix = SLOT[name]
    for row in rows:
        right, answers = _correct(name, row)
        seen = set()
        for seed in range(40):
            text, label = _formatter(name)(row, random.Random(seed))
            shown = next(a for a in answers if text.endswith(prefix + a + suffix))
            if name == "cosmos_qa" and "None of the above" in right:
                assert label == 0 and shown != right  # the reference never shows "None of the above" as right
            else:
                assert label == int(shown == right), (name, text)
            seen.add(label)
            assert _formatter(name)(row, random.Random(seed)) == (text, label)  # reproducible
        assert seen == ({0} if name == "cosmos_qa" and "None of the above" in right else {0, 1})


def test_openbookqa_shows_text_for_both_labels():
    _, rows = fixture("openbookqa")
    texts = rows[0]["choices"]["text"]
    for seed in range(20):
        text, _ = _formatter("openbookqa")(rows[0], random.Random(seed))
        assert text.rsplit("Answer: ", 1)[1] in texts  # never the bare letter, unlike the reference


def test_ethics_utilitarianism_names_the_more_pleasant():
    _, rows = fixture("ethics-utilitarianism")
    row, labels = rows[0], set()
    for seed in range(30):
        text, label = _formatter("ethics-utilitarianism")(row, random.Random(seed))
        first = text.split("1) ", 1)[1].split("\n2)", 1)[0]
        named = int(text.rsplit("A: ", 1)[1])
        chosen = first if named == 1 else text.split("2) ", 1)[1].rsplit(" A: ", 1)[0]
        assert label == int(chosen == row["baseline"])
        labels.add(label)
    assert labels == {0, 1}


def test_anthropic_hh_and_twitter_fixtures_format():
    _, rows = fixture("anthropic_hh")
    text, label = _formatter("anthropic_hh")(rows[0], random.Random(1))
    assert text == (rows[0]["chosen"] if label else rows[0]["rejected"])


# ---------------------------------------------------------------- the script removal, at load_dataset


class StandIn:
    """datasets.load_dataset as datasets >= 4 behaves on a script-based repo: the main branch raises the
    library's exact error; the Parquet conversion serves the rows under its config name."""

    def __init__(self, rows: list[dict], parquet_configs: tuple[str, ...] = ("default",), script="repo.py"):
        self.rows, self.configs, self.script, self.calls = rows, parquet_configs, script, []

    def __call__(self, path, name=None, revision=None, split=None, **kw):
        self.calls.append((path, name, revision, split))
        if revision != PARQUET_REVISION:
            raise RuntimeError(f"Dataset scripts are no longer supported, but found {self.script}")
        if name not in self.configs:
            raise ValueError(f"BuilderConfig '{name}' not found. Available: {list(self.configs)}")
        return self.rows


def many(name: str, n: int = 60) -> list[dict]:
    _, rows = fixture(name)
    return [rows[i % len(rows)] for i in range(n)]


def test_script_error_matches_the_library():
    source = (Path(datasets.__file__).parent / "load.py").read_text()
    assert SCRIPT_ERROR in source  # the text the fallback keys on is the installed library's


def test_unflagged_script_repo_falls_back_to_parquet(monkeypatch, capsys):
    stand_in = StandIn(many("quail"), script="quail.py")
    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    start = len(LOADS)
    splits = make_splits({"name": "quail", "n_train": 20, "n_test": 10, "seed": 0}, 0)
    assert len(splits["A"].texts) == 10
    assert stand_in.calls[:2] == [
        ("textmachinelab/quail", None, None, "train"),
        ("textmachinelab/quail", "default", PARQUET_REVISION, "train"),
    ]
    record = LOADS[start]
    assert record["parquet_conversion"] and record["fallback"] and record["revision"] == PARQUET_REVISION
    assert "quail" in capsys.readouterr().err  # the job log says which data it read


def test_flagged_entry_loads_parquet_with_its_config(monkeypatch):
    stand_in = StandIn(many("piqa"), parquet_configs=("plain_text",))
    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    make_splits({"name": "piqa", "n_train": 20, "n_test": 10, "seed": 0}, 0)
    assert stand_in.calls[0] == ("ybisk/piqa", "plain_text", PARQUET_REVISION, "train")
    assert ("ybisk/piqa", "plain_text", PARQUET_REVISION, "validation") in stand_in.calls


def test_parquet_config_renamed_default(monkeypatch):
    stand_in = StandIn(many("piqa"), parquet_configs=("default",))  # the conversion calls it `default`
    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    make_splits({"name": "piqa", "n_train": 20, "n_test": 10, "seed": 0}, 0)
    assert stand_in.calls[:2] == [
        ("ybisk/piqa", "plain_text", PARQUET_REVISION, "train"),
        ("ybisk/piqa", "default", PARQUET_REVISION, "train"),
    ]


def test_pinned_revision_of_a_script_repo_names_the_fix(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", StandIn(many("quail")))
    with pytest.raises(W2SError) as err:
        make_splits({"name": "quail", "n_train": 4, "n_test": 2, "seed": 0, "revision": "abc123"}, 0)
    msg = str(err.value)
    assert all(
        s in msg
        for s in ("'quail'", "textmachinelab/quail", "revision abc123", PARQUET_REVISION, "script-based", "path =")
    )


def test_offline_miss_says_prefetch(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'allenai/sciq' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(W2SError, match="w2s prefetch"):
        make_splits({"name": "sciq", "n_train": 4, "n_test": 2, "seed": 0}, 0)


def test_fingerprints_say_parquet_and_keep_old_keys():
    import hashlib

    old = {
        "dataset": "sciq",
        "hub_id": "allenai/sciq",
        "revision": None,
        "formatter_version": 1,
        "splits": ["train", "test"],
        "balance": False,
    }  # the identity before this change
    assert dataset_fingerprint({"name": "sciq"}) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    assert DATASETS["cosmos_qa"].identity({})["source"] == PARQUET_REVISION
    assert DATASETS["ethics-justice"].identity({})["config"] == "justice"
    assert dataset_fingerprint({"name": "ethics-justice"}) != dataset_fingerprint({"name": "ethics-virtue"})


# ---------------------------------------------------------------- w2s datasets, presets


def test_w2s_datasets_lists_the_registry_and_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds"))
    (tmp_path / "ds" / "allenai___sciq").mkdir(parents=True)
    assert cli.main(["datasets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) >= 20 and rows["sciq"]["cached"] is True and rows["boolq"]["cached"] is False
    assert rows["sciq"]["rows"] == {"train": 11679, "test": 1000} and rows["sciq"]["licence"]
    assert rows["piqa"]["revision"] == PARQUET_REVISION and rows["synthetic"]["cached"] is None
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "hellaswag" in out and "Rowan/hellaswag" in out and "[Parquet conversion]" in out


PRESETS = sorted((ROOT / "recipes" / "presets").glob("*.toml"))


def test_presets_exist_per_family():
    assert len(PRESETS) >= 5


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_plans(preset):
    """What `w2s run --dry-run` checks and prints, in-process (the long-input count is the slow part)."""
    plan = build_plan(load_recipe(preset))
    text = "\n".join(describe_plan(plan, set()))
    assert len(plan.jobs) == 4 and "logconf" in text and "xent" in text
    assert plan.recipe.data["balance"] is True and plan.recipe.data["name"] in DATASETS


def test_preset_dry_run_command(tmp_path):
    """One preset through the real command, offline: it validates, plans and exits 0 without the Hub."""
    out = run_w2s(
        tmp_path,
        "run",
        "--dry-run",
        str(PRESETS[0]),
        env={"HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "ds")},
    )
    assert out.returncode == 0, out.stderr
    assert "logconf" in out.stdout
