"""`w2s prefetch` and offline compute nodes: the packaged demo assets, built-in models, a local
directory standing in for the Hub (snapshot_download writes the real huggingface_hub cache layout),
and `w2s run` failing before any job starts when something was not prefetched."""

import json
import shutil
from pathlib import Path

import datasets
import huggingface_hub
import pytest
from conftest import ROOT, run_w2s, small_recipe

from w2s_core import assets, cli
from w2s_core.data.cache import offline_env
from w2s_core.errors import InputError

BUILTIN = (
    '[[models]]\nname = "small"\npath = "tiny-random-gpt2"\ntiny = { hidden_size = 8, num_layers = 1 }\n'
    '[[models]]\nname = "big"\npath = "tiny-random-bert"\n'
)


def recipe(tmp_path: Path, models: str = BUILTIN, data: str = "synthetic", name: str = "pf") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(small_recipe(name, models, data=data, train="eval_every = 0\n"))
    return path


def hub_models(*paths: str) -> str:
    return "".join(f'[[models]]\nname = "m{i}"\npath = "{p}"\narch = "encoder"\n' for i, p in enumerate(paths))


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty Hugging Face caches under tmp_path, named by the environment (read at call time)."""
    env = offline_env(tmp_path / "hf")
    for key in ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.setenv(key, env[key])
    return env


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A local folder standing in for the Hub: repo folders under it; snapshot_download copies one into
    the cache the way huggingface_hub lays it out (refs/<revision> -> snapshots/<commit>/files)."""
    hub = tmp_path / "fakehub"
    repo = hub / "org" / "tiny-encoder"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (repo / "model.safetensors").write_bytes(b"\0" * 16)
    calls = []

    def snapshot_download(repo_id, revision=None, cache_dir=None, **kw):
        calls.append((repo_id, revision))
        src = hub / repo_id
        if not src.is_dir():
            raise huggingface_hub.errors.RepositoryNotFoundError(f"404 Client Error: {repo_id} not found")
        commit = revision if revision and len(revision) == 40 else "a" * 40
        folder = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / (revision or "main")).write_text(commit)
        shutil.copytree(src, folder / "snapshots" / commit, dirs_exist_ok=True)
        return str(folder / "snapshots" / commit)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_prefetch_builtin_recipe_prints_the_offline_environment(tmp_path, caches, capsys):
    assert cli.main(["prefetch", str(recipe(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "built in" in out and "synthetic" in out
    for key, value in caches.items():
        if key != "HF_HOME":
            assert f"export {key}={value}" in out


def test_prefetch_to_dir_sets_the_caches(tmp_path, monkeypatch, capsys):
    for key in ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(key, raising=False)  # monkeypatch restores what cmd_prefetch sets
        monkeypatch.setenv(key, "unset-before")
    to = tmp_path / "cluster-cache"
    assert cli.main(["prefetch", str(recipe(tmp_path)), "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert f"export HF_HOME={to.resolve()}" in out and f"export HF_HUB_CACHE={to.resolve() / 'hub'}" in out
    assert "export HF_HUB_OFFLINE=1" in out and "export HF_DATASETS_OFFLINE=1" in out


def test_prefetch_demo_reports_packaged_assets(capsys):
    code = cli.main(["prefetch", str(ROOT / "recipes" / "demo.toml")])
    out, err = capsys.readouterr()
    if all(assets.installed().values()):
        assert code == 0 and "packaged demo model" in out
    else:  # not installed here: named, with the command that installs them
        assert code == 1 and "minilm-l6" in out and assets.INSTALL_COMMAND in out and "incomplete" in err


def test_prefetch_from_stand_in_hub_then_offline_preflight(tmp_path, caches, fake_hub, capsys, monkeypatch):
    path = recipe(tmp_path, hub_models("org/tiny-encoder", "org/not-on-hub"))
    assert cli.main(["prefetch", str(path)]) == 1
    out, err = capsys.readouterr()
    assert fake_hub == [("org/tiny-encoder", None), ("org/not-on-hub", None)]
    assert "ok      model    m0" in out and "FAILED  model    m1" in out and "org/not-on-hub" in out
    assert "model 'm1'" in err
    cached = Path(caches["HF_HUB_CACHE"]) / "models--org--tiny-encoder" / "snapshots" / ("a" * 40)
    assert (cached / "config.json").is_file()
    # on the compute node: the prefetched model passes preflight, the missing one fails it, by name
    from w2s_core.spec.recipe import load_recipe
    from w2s_core.supervision.preflight import preflight

    good = load_recipe(recipe(tmp_path, hub_models("org/tiny-encoder") + BUILTIN, name="good"))
    bad = load_recipe(path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preflight(good)
    with pytest.raises(InputError, match="model 'm1'.*org/not-on-hub.*w2s prefetch"):
        preflight(bad)


def test_prefetch_dataset_through_load_dataset(tmp_path, caches, monkeypatch, capsys):
    rows = [json.loads(x) for x in (ROOT / "tests/fixtures/datasets/sst2.jsonl").read_text().splitlines()[1:]]
    calls = []

    def load_dataset(path, name=None, revision=None, split=None, **kw):
        calls.append((path, name, revision, split))
        return [{**rows[i % 2], "sentence": f"{rows[i % 2]['sentence']} {i}"} for i in range(80)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert cli.main(["prefetch", str(recipe(tmp_path, data="sst2"))]) == 0
    out = capsys.readouterr().out
    assert ("stanfordnlp/sst2", None, None, "train") in calls and (
        "stanfordnlp/sst2",
        None,
        None,
        "validation",
    ) in calls
    assert "ok      dataset  sst2: train: stanfordnlp/sst2 @ default branch" in out


def test_offline_run_fails_before_any_job_naming_the_missing(tmp_path, caches):
    env = {**caches, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = tmp_path / "results"
    model_miss = run_w2s(out, "run", str(recipe(tmp_path, hub_models("org/never-fetched") + BUILTIN)), env=env)
    assert model_miss.returncode == 2 and "model 'm0'" in model_miss.stderr and "org/never-fetched" in model_miss.stderr
    data_miss = run_w2s(out, "run", str(recipe(tmp_path, data="sst2", name="d")), env=env)
    assert data_miss.returncode == 2, data_miss.stderr
    assert "dataset 'sst2'" in data_miss.stderr and "w2s prefetch" in data_miss.stderr
    assert not (out / "jobs").exists() or not any((out / "jobs").iterdir())  # nothing started


def test_prefetched_builtin_recipe_runs_offline(tmp_path, caches, capsys):
    path = recipe(tmp_path)
    assert cli.main(["prefetch", str(path)]) == 0
    run = run_w2s(
        tmp_path / "results", "run", str(path), env={**caches, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run_w2s(tmp_path / "results", "results", "--json").stdout)
    assert results and results[0]["method"] == "xent"
