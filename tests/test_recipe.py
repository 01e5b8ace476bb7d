"""Recipe validation: good recipes resolve with defaults; bad ones fail with the key named."""

from pathlib import Path

import pytest

from w2s_core.cli import main
from w2s_core.errors import InputError
from w2s_core.spec.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
name = "t"
seeds = [0, 1]
[data]
name = "synthetic"
n_train = 100
n_test = 50
[train]
epochs = 1
lr = 0.002
[[models]]
name = "a"
path = "tiny-random-bert"
[[models]]
name = "b"
path = "tiny-random-gpt2"
lr = 0.005
[[models]]
name = "c"
path = "tiny-random-gpt2"
tiny = { hidden_size = 48 }
[[transfer]]
loss = "xent"
[[transfer]]
loss = "logconf"
alpha = 0.75
[[bootstrap]]
chain = ["a", "b", "c"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        load_recipe(write(tmp_path, text))
    return str(info.value)


def test_good_recipe_resolves_defaults_and_overrides(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert [m["name"] for m in r.models] == ["a", "b", "c"]
    assert r.pairs == [("a", "b"), ("a", "c"), ("b", "c")]
    a, b = r.model("a"), r.model("b")
    assert a["lr"] == 0.002  # [train] overrides the registry's 1e-3
    assert b["lr"] == 0.005  # the model entry overrides [train]
    assert a["max_length"] == 64  # registry default kept
    assert r.transfers[1] == {"name": "logconf", "loss": "logconf", "params": {"alpha": 0.75, "warmup_frac": 0.2}}
    assert r.chains[0]["models"] == ["a", "b", "c"] and r.chains[0]["relabel"] == "alternate"
    assert r.train["mode"] == "finetune" and r.data["seed"] == 0
    assert r.seeds == [0, 1]


def test_shipped_recipes_are_valid(tmp_path):
    for path in (ROOT / "recipes").glob("*.toml"):
        load_recipe(path)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    assert load_recipe(write(tmp_path, block)).models[2]["name"] == "gpt2-large"


def test_data_problems_stop_the_run_before_any_job(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a b", "label": 1}\n{"text": "c d", "label": 0}\n')
    recipe = GOOD.replace('name = "synthetic"', f'path = "{data}"')
    code = main(["--results-dir", str(tmp_path / "res"), "run", str(write(tmp_path, recipe))])
    err = capsys.readouterr().err
    assert code == 2 and "n_test = 50" in err and "d.jsonl" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    "edit, key, expected",
    [
        (("[train]\n", "[train]\nlearning_rate = 1\n"), "train.learning_rate", "did you mean 'lr'"),
        (("lr = 0.002", "lr = -0.1"), "train.lr", "positive number"),
        (("epochs = 1", 'epochs = "two"'), "train.epochs", "positive number"),
        (('chain = ["a", "b", "c"]', 'chain = ["a"]'), "bootstrap[0].chain", "at least two models"),
        (('chain = ["a", "b", "c"]', 'chain = ["a", "bb"]'), "bootstrap[0].chain", "did you mean 'b'"),
        (("n_train = 100", "n_train = 101"), "data.n_train", "even"),
        (('name = "synthetic"', 'name = "synthetc"'), "data.name", "did you mean 'synthetic'"),
        (("alpha = 0.75", "alpha = 1.5"), "transfer[1]", "alpha"),
        (("alpha = 0.75", "alpah = 0.5"), "transfer[1]", "did you mean 'alpha'"),
        (('loss = "xent"', 'loss = "xnet"'), "transfer[0].loss", "did you mean 'xent'"),
        (("seeds = [0, 1]", "seeds = [0, 0]"), "seeds", "distinct"),
        (("seeds = [0, 1]", "seedz = [0, 1]"), "seedz", "did you mean 'seeds'"),
        (("[data]\n", "[data]\nsplit_seed = 3\n"), "data.split_seed", "unknown key"),
    ],
)
def test_bad_recipe_names_the_key(tmp_path, edit, key, expected):
    old, new = edit
    assert old in GOOD
    msg = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert str(tmp_path / "r.toml") in msg
    assert key in msg and expected in msg


def test_all_problems_reported_at_once(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("lr = 0.002", "lr = -1").replace("epochs = 1", "epoch = 1"))
    assert "train.lr" in msg and "train.epoch" in msg and "2 problem(s)" in msg


def test_toml_syntax_error_and_missing_file(tmp_path):
    assert "not valid TOML" in error_of(tmp_path, GOOD + "\n[train\n")
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "missing.toml")


def test_missing_sections(tmp_path):
    msg = error_of(tmp_path, 'models = ["tiny-random-bert", "tiny-random-gpt2"]\n')
    assert "missing table [data]" in msg


def test_cli_exits_2_without_traceback(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("[train]\n", "[train]\nlearning_rate = 1\n"))
    code = main(["--results-dir", str(tmp_path / "res"), "run", str(path), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.learning_rate" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()  # nothing was created for a bad recipe
