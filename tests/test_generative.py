"""Generative finetuning (`w2s_core.training.generative`): next-token training before weak-to-strong training.

- A generative job on the task text (halves A and B of synthetic data) lowers its LM loss, writes
  one event per step and result.json without test figures, and saves a checkpoint that loads through
  `load_backbone`/`load_tokenizer`; `resolve_init` points a downstream job at it, and a GT job then
  trains from it (its predictions differ from the same job started from the original weights).
- A local text file is read paragraph by paragraph and checked against its planned sha256.
- An encoder-only model is an error that says generative finetuning needs a causal LM.
- `python -m w2s_core.training` dispatches by the job's stage.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import train_in_process

from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import Event, JobDir, Result
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.training import __main__ as entry
from w2s_core.training import generative
from w2s_core.training.models import load_backbone, load_tokenizer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RECIPE = """
[data]
name = "synthetic"
n_train = 40
n_test = 20
[train]
epochs = 1
[[models]]
name = "gpt"
path = "tiny-random-gpt2"
[[models]]
name = "bert"
path = "tiny-random-bert"
"""


pytestmark = pytest.mark.usefixtures("w2s_cache")  # one w2s cache for the module (conftest)


def gt_spec(model: str) -> dict:
    jobs = build_plan(parse_recipe(tomllib.loads(RECIPE), Path("t.toml"), RECIPE)).jobs
    return next(j.spec for j in jobs if j.kind == "gt" and j.model == model)


def generative_spec(model: str = "gpt", text="task", epochs: float = 3, lr: float = 3e-3) -> dict:
    """A generative stage's job.json as the planner writes it (interface: stage, generative, train_split AB)."""
    spec = gt_spec(model)
    spec.update(
        stage="generative",
        generative={"text": text, "epochs": epochs, "lr": lr},
        train_split="AB",
        labels="none",
        predict_split=None,
        loss={"name": "lm", "params": {}},
    )
    spec["train"] = {**spec["train"], "epochs": epochs, "lr": lr}
    return spec


def run_stage(job_dir: Path, spec: dict) -> None:
    """Write the spec and run it through the stage dispatch, as `python -m w2s_core.training` would."""
    from accelerate.state import AcceleratorState, GradientState

    JobDir(job_dir).write_spec(spec)
    try:
        entry.run(job_dir)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> Path:
    job_dir = tmp_path_factory.mktemp("gen")
    run_stage(job_dir, generative_spec())
    return job_dir


def test_generative_stage_lowers_its_lm_loss_and_writes_no_test_figures(stage):
    folder = JobDir(stage)
    result = folder.read_result()
    assert result[Result.LM_LOSS] < result[Result.INITIAL_LM_LOSS] - 0.1, result
    assert Result.N_TEST not in result and Event.TEST_ACC not in result
    assert result[Result.N_TEXTS] == 40  # halves A and B, never the test set
    events = [json.loads(line) for line in folder.events.read_text().splitlines()]
    assert [e[Event.STEP] for e in events[:-1]] == list(range(1, result[Result.STEPS] + 1))
    assert result[Result.STEPS] == 3 * math.ceil(40 / 16)  # 3 epochs of batches of 16 (the last one short)
    assert all(Event.LOSS in e for e in events) and events[-1][Event.KIND] == Event.FINAL
    assert folder.read_predictions() == {}


def test_saved_checkpoint_loads_as_backbone_and_downstream_jobs_start_from_it(stage, tmp_path):
    downstream = {**gt_spec("gpt"), "init_dir": str(stage)}
    resolved = generative.resolve_init(downstream)
    assert resolved["model"]["path"] == str(stage / "model") and resolved["model"]["name"] == "gpt"
    assert resolved["model"]["tiny"] is None and resolved["model"]["revision"] is None
    assert generative.resolve_init(gt_spec("gpt")) == gt_spec("gpt")  # no init_dir: unchanged

    config = json.loads((stage / "model" / "config.json").read_text())
    weights = hashlib.sha256((stage / "model" / "model.safetensors").read_bytes()).hexdigest()
    assert config["w2s_weights_sha256"] == weights  # in the local model's fingerprint: caches see new weights
    assert config["attn_pdrop"] == 0.1 and config["use_cache"] is True  # as the original config, not as trained

    saved = load_backbone(resolved["model"], torch.float32)
    original = load_backbone(gt_spec("gpt")["model"], torch.float32)
    assert type(saved).__name__ == "GPT2Model" and saved.config.use_cache is False
    assert not torch.equal(saved.h[0].attn.c_attn.weight, original.h[0].attn.c_attn.weight)
    tok = load_tokenizer(resolved["model"])
    assert tok("great movie")["input_ids"] == load_tokenizer(gt_spec("gpt")["model"])("great movie")["input_ids"]

    train_in_process(tmp_path / "from-stage", downstream)
    train_in_process(tmp_path / "plain", gt_spec("gpt"))
    from_stage = JobDir(tmp_path / "from-stage").read_predictions()["test"]["probs"]
    plain = JobDir(tmp_path / "plain").read_predictions()["test"]["probs"]
    assert len(from_stage) == len(plain) and from_stage != plain


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(W2SError, match="generative job"):
        generative.resolve_init({**gt_spec("gpt"), "init_dir": str(tmp_path)})


def test_text_file_is_read_by_paragraph_and_checked_against_its_digest(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the movie was great\nand fun\n\n  \n\na dull film\n\n\nboring plot\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert generative.file_texts(path, digest) == ["the movie was great\nand fun", "a dull film", "boring plot"]
    run_stage(tmp_path / "job", generative_spec(text={"path": str(path), "sha256": digest}, epochs=1))
    assert JobDir(tmp_path / "job").read_result()[Result.N_TEXTS] == 3
    with pytest.raises(InputError, match="changed since"):
        generative.training_texts({"generative": {"text": {"path": str(path), "sha256": "0" * 64}}})


def test_encoder_only_model_is_an_error_naming_causal_lms(tmp_path):
    with pytest.raises(W2SError, match="generative finetuning needs a causal"):
        run_stage(tmp_path, generative_spec("bert"))
    assert not JobDir(tmp_path).result.exists()


def test_unknown_stage_is_a_clear_error(tmp_path):
    with pytest.raises(W2SError, match="unknown stage 'dream'"):
        run_stage(tmp_path, {**gt_spec("gpt"), "stage": "dream"})


def test_stage_does_not_depend_on_the_minibatch(tmp_path):
    spec = generative_spec(epochs=1)
    small = {**spec, "train": {**spec["train"], "minibatch_size": 3}}
    run_stage(tmp_path / "whole", spec)
    run_stage(tmp_path / "small", small)
    whole, split = (JobDir(tmp_path / n).read_result() for n in ("whole", "small"))
    assert whole[Result.STEPS] == split[Result.STEPS]
    assert split[Result.LM_LOSS] == pytest.approx(whole[Result.LM_LOSS], abs=1e-5)
    assert split[Result.LM_LOSS] < split[Result.INITIAL_LM_LOSS]
