"""Every bad input gets one clear paragraph, the right exit code and no traceback, and touches nothing recorded.

Table-driven: each case names the files it writes, the command, the exit code (2: usage or input,
1: runtime) and words the message must contain. All cases run against one results directory that
already holds a finished run, whose rows must be the same afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import small_recipe

from w2s_core import cli
from w2s_core.store import Store
from w2s_core.supervision.requests import INBOX

MODELS = """[[models]]
name = "a"
path = "tiny-random-bert"
tiny = { hidden_size = 16 }
[[models]]
name = "b"
path = "tiny-random-bert"
"""
GOOD = small_recipe("bad-inputs", MODELS)
LOCAL = GOOD.replace('name = "synthetic"', 'path = "data.jsonl"\ntext_column = "text"\nlabel_column = "label"')
ROWS = "".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(80))


def swap(old: str, new: str, base: str = GOOD) -> str:
    assert old in base
    return base.replace(old, new, 1)


# (id, files to write {name: text}, argv after --results-dir, exit code, words the message must contain)
CASES = [
    ("recipe-missing", {}, ["run", "{tmp}/nope.toml"], 2, ["nope.toml", "not found"]),
    ("recipe-is-a-folder", {"dir.toml/x": ""}, ["run", "{tmp}/dir.toml"], 2, ["dir.toml", "not found"]),
    ("toml-syntax", {"r.toml": GOOD + "oops = [\n"}, ["run", "{tmp}/r.toml"], 2, ["r.toml", "not valid TOML"]),
    (
        "typo-top-key",
        {"r.toml": "seedz = [0]\n" + GOOD.replace("seeds = [0]\n", "")},
        ["run", "{tmp}/r.toml"],
        2,
        ["seedz", "seeds"],
    ),
    (
        "alias-key",
        {"r.toml": swap("epochs = 1", "learning_rate = 0.1")},
        ["run", "{tmp}/r.toml"],
        2,
        ["learning_rate", "'lr'"],
    ),
    ("wrong-type", {"r.toml": swap("epochs = 1", 'epochs = "two"')}, ["run", "{tmp}/r.toml"], 2, ["epochs", "two"]),
    ("negative-lr", {"r.toml": swap("epochs = 1", "lr = -0.1")}, ["run", "{tmp}/r.toml"], 2, ["lr", "-0.1"]),
    (
        "unknown-loss",
        {"r.toml": swap('loss = "xent"', 'loss = "hinge"')},
        ["run", "{tmp}/r.toml"],
        2,
        ["hinge", "loss"],
    ),
    ("chain-of-one", {"r.toml": GOOD + '[[bootstrap]]\nchain = ["a"]\n'}, ["run", "{tmp}/r.toml"], 2, ["chain"]),
    (
        "chain-unknown-model",
        {"r.toml": GOOD + '[[bootstrap]]\nchain = ["a", "zz"]\n'},
        ["run", "{tmp}/r.toml"],
        2,
        ["zz"],
    ),
    (
        "no-data-table",
        {"r.toml": GOOD.split("[data]")[0] + GOOD.split("[train]")[1].join(["[train]", ""])},
        ["run", "{tmp}/r.toml"],
        2,
        ["data"],
    ),
    (
        "data-name-and-path",
        {"r.toml": swap('name = "synthetic"', 'name = "synthetic"\npath = "x.jsonl"')},
        ["run", "{tmp}/r.toml"],
        2,
        ["name", "path"],
    ),
    (
        "unknown-dataset",
        {"r.toml": swap('name = "synthetic"', 'name = "sciqq"')},
        ["run", "{tmp}/r.toml"],
        2,
        ["sciqq", "sciq"],
    ),
    (
        "n-test-too-big",
        {"r.toml": swap("n_test = 20", "n_test = 100", LOCAL), "data.jsonl": ROWS},
        ["run", "{tmp}/r.toml"],
        2,
        ["n_test = 100", "data.jsonl"],
    ),
    ("data-file-missing", {"r.toml": LOCAL}, ["run", "{tmp}/r.toml"], 2, ["data.jsonl", "does not exist"]),
    (
        "data-missing-column",
        {"r.toml": LOCAL, "data.jsonl": ROWS.replace('"label"', '"target"')},
        ["run", "{tmp}/r.toml"],
        2,
        ["data.jsonl", "no column 'label'", "target"],
    ),
    (
        "labels-not-binary",
        {"r.toml": LOCAL, "data.jsonl": ROWS.replace('"label": 1', '"label": 7')},
        ["run", "{tmp}/r.toml"],
        2,
        ["data.jsonl", "binary", "7"],
    ),
    (
        "data-bad-json-line",
        {"r.toml": LOCAL, "data.jsonl": ROWS + "{not json\n"},
        ["run", "{tmp}/r.toml"],
        2,
        ["data.jsonl", "line 81", "not valid JSON"],
    ),
    (
        "data-bad-extension",
        {"r.toml": swap("data.jsonl", "data.xlsx", LOCAL), "data.xlsx": "x"},
        ["run", "{tmp}/r.toml"],
        2,
        ["data.xlsx", "unsupported extension"],
    ),
    (
        "unknown-tiny-model",
        {"r.toml": swap('path = "tiny-random-bert"\ntiny', 'path = "tiny-random-bret"\ntiny')},
        ["run", "{tmp}/r.toml"],
        2,
        ["model 'a'", "tiny-random-bret", "did you mean 'tiny-random-bert'", "HF_HUB_OFFLINE"],
    ),
    (
        "model-folder-missing",
        {"r.toml": swap('path = "tiny-random-bert"\n[[transfer]]', 'path = "./no-such-model-dir"\n[[transfer]]')},
        ["run", "{tmp}/r.toml"],
        2,
        ["no-such-model-dir", "does not exist"],
    ),
    (
        "duplicate-model-name",
        {"r.toml": swap('name = "b"', 'name = "a"')},
        ["run", "{tmp}/r.toml"],
        2,
        ["'a'", "more than once"],
    ),
    ("launch-parallel-zero", {"r.toml": GOOD + "[launch]\nparallel = 0\n"}, ["run", "{tmp}/r.toml"], 2, ["parallel"]),
    ("parallel-flag-zero", {"r.toml": GOOD}, ["run", "{tmp}/r.toml", "--parallel", "0"], 2, ["--parallel", ">= 1"]),
    ("jobs-per-gpu-zero", {"r.toml": GOOD}, ["run", "{tmp}/r.toml", "--jobs-per-gpu", "0"], 2, ["--jobs-per-gpu"]),
    ("show-unknown-run", {}, ["show", "999"], 2, ["no run with id 999", "w2s runs"]),
    ("show-unknown-job", {}, ["show", "ffffffff"], 2, ["'ffffffff' matches 0 jobs"]),
    ("results-unknown-recipe", {}, ["results", "nosuch"], 2, ["nosuch", "w2s run"]),
    ("cancel-unknown", {}, ["cancel", "nosuch"], 2, ["nosuch", "not a job hash prefix"]),
    ("cancel-nothing-running", {}, ["cancel", "bad-inputs"], 2, ["Nothing to cancel", "queued or running"]),
    ("retry-nothing-failed", {}, ["retry"], 2, ["Nothing to retry"]),
]
# commands against a results directory that is missing, damaged or unwritable
DIR_CASES = [
    ("runs-no-db", "empty", ["runs"], 2, ["no w2s results database", "w2s.db"]),
    ("queue-no-db", "empty", ["queue"], 2, ["no w2s results database"]),
    ("cancel-no-db", "empty", ["cancel", "abcd"], 2, ["no w2s results database"]),
    ("runs-corrupt-db", "corrupt", ["runs"], 1, ["w2s.db", "damaged or is not a w2s database"]),
    ("run-corrupt-db", "corrupt", ["run", "{tmp}/r.toml"], 1, ["w2s.db", "damaged"]),
    ("runs-newer-schema", "newer", ["runs"], 1, ["schema version 99", "Upgrade w2s"]),
    ("run-results-under-a-file", "file", ["run", "{tmp}/r.toml"], 2, ["Cannot create the results directory"]),
    ("run-results-not-writable", "proc", ["run", "{tmp}/r.toml"], 2, ["results directory", "/proc/"]),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A results directory holding one finished run, recorded through the store."""
    root = tmp_path_factory.mktemp("recorded")
    with Store.open(root) as store:
        store.add_recipe("r" * 64, "bad-inputs", "x.toml", GOOD)
        run_id = store.start_run("r" * 64, ["w2s", "run"], {})
        store.upsert_job(
            {
                "hash": "ab" * 32,
                "kind": "gt",
                "model": "a",
                "seed": 0,
                "spec": {},
                "status": "done",
                "run_id": run_id,
                "recipe_hash": "r" * 64,
                "dir": "jobs/abab",
            }
        )
        store.set_results("ab" * 32, {"test_acc": 0.75})
        store.finish_run(run_id, "done")
    return root


def snapshot(root: Path) -> tuple:
    with Store.open(root, readonly=True) as store:
        return store.recipes(), store.runs(), store.jobs(), store.results("ab" * 32)


def check(capsys, argv: list[str], code: int, words: list[str]) -> str:
    got = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert got == code, out + err
    assert err.startswith("error: ") and err.count("\nerror: ") == 0, err  # one message, not a cascade
    for word in words:
        assert word in err, f"{word!r} not in: {err}"
    return err


@pytest.mark.parametrize("name, files, argv, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, files, argv, code, words, tmp_path, recorded, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no test may reach the network
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    before = snapshot(recorded)
    check(capsys, ["--results-dir", str(recorded), *[a.format(tmp=tmp_path) for a in argv]], code, words)
    assert snapshot(recorded) == before  # nothing already recorded was touched
    assert not (recorded / INBOX).exists() or not list((recorded / INBOX).iterdir())  # nothing queued


@pytest.mark.parametrize("name, kind, argv, code, words", DIR_CASES, ids=[c[0] for c in DIR_CASES])
def test_bad_results_dir(name, kind, argv, code, words, tmp_path, capsys):
    (tmp_path / "r.toml").write_text(GOOD)
    root = tmp_path / "res"
    if kind == "empty":
        root.mkdir()
    elif kind == "corrupt":
        root.mkdir()
        (root / "w2s.db").write_bytes(b"this is not a database" * 100)
    elif kind == "newer":
        Store.open(root).close()
        with sqlite3.connect(root / "w2s.db") as conn:
            conn.execute("PRAGMA user_version = 99")
    elif kind == "file":
        (tmp_path / "afile").write_text("x")
        root = tmp_path / "afile" / "res"
    elif kind == "proc":  # not writable even for root
        root = Path("/proc/w2s-results")
    before = (root / "w2s.db").read_bytes() if (root / "w2s.db").is_file() else None
    check(capsys, ["--results-dir", str(root), *[a.format(tmp=tmp_path) for a in argv]], code, words)
    if before is not None:
        assert (root / "w2s.db").read_bytes() == before  # a damaged or newer database is left as it was


def test_dry_run_shows_trust_remote_code(tmp_path, capsys):
    (tmp_path / "r.toml").write_text(
        swap('path = "tiny-random-bert"\ntiny', 'path = "tiny-random-bert"\ntrust_remote_code = true\ntiny')
    )
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", str(tmp_path / "r.toml"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    flagged = [line for line in lines if "trust_remote_code" in line]
    assert flagged and all(" a seed=" in line or "a's labels" in line for line in flagged)
