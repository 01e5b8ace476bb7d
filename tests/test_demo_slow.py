"""The demo's real packaged models and data, on a reduced recipe. Opt-in: pytest -m slow."""

import json

import pytest
from conftest import ROOT, run_w2s  # the w2s_cli fixture's function: a module-scoped fixture uses it

from w2s_core import assets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    missing = [name for name, ok in assets.installed().items() if not ok]
    if missing:
        pytest.skip(f"demo assets missing ({', '.join(missing)}): run `w2s assets install demo`")
    recipe = tmp_path_factory.mktemp("recipe") / "demo-small.toml"
    text = (ROOT / "recipes" / "demo.toml").read_text()
    recipe.write_text(
        text.replace("n_train = 2000", "n_train = 600")
        .replace("n_test = 600", "n_test = 300")
        .replace("seeds = [0, 1, 2]", "seeds = [0]")
    )
    out = tmp_path_factory.mktemp("results")
    run = run_w2s(out, "run", str(recipe))
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run_w2s(out, "results", "--json").stdout)


def test_real_models_learn_and_strong_beats_weak(results):
    assert {r["method"] for r in results} == {"xent", "logconf"}
    for row in results:
        assert 0.6 < row["weak_acc"] < row["ceiling_acc"]  # real pretrained features carry sentiment
        assert row["weak_acc"] - 0.05 < row["w2s_acc"] <= 1.0


def test_packaged_folders_load_offline():
    from transformers import AutoConfig

    if not all(assets.installed().values()):
        pytest.skip("demo assets missing: run `w2s assets install demo`")
    assert AutoConfig.from_pretrained(assets.minilm_dir()).hidden_size == 384
    assert AutoConfig.from_pretrained(assets.mpnet_dir()).hidden_size == 768
