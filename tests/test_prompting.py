"""Prompt jobs (`w2s_core.training.prompt`): zero- and k-shot scoring of label words by a causal LM.

- A prompt job on tiny-random-gpt2 over synthetic data writes predictions of test and half B (the
  pools every trained job uses), a result with the test figures and `shots`, one final event; its
  P(class 1) is the softmax over the label words' next-token log-probabilities, computed by hand here.
- Demonstrations: balanced across labels (the remainder from the lowest classes), drawn by the
  seed, the same on every call; with them the prompt (and so the predictions) changes.
- A transfer learns from a prompt job's labels of B.
- Three classes: predictions.json holds each example's distribution over the three label words.
- More shots than half A holds is a clear error.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import train_in_process

from w2s_core.data import PromptFormat, Split, make_splits, prompt_format, render
from w2s_core.errors import W2SError
from w2s_core.jobdir import Event, JobDir, Result
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.training import __main__ as entry
from w2s_core.training import prompt
from w2s_core.training.choice import load_causal_lm
from w2s_core.training.models import load_tokenizer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RECIPE = """
[data]
name = "synthetic"
n_train = 40
n_test = 20
template = "{text} overall it was"
label_words = [" bad", " good"]
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


def gt_spec() -> dict:
    jobs = build_plan(parse_recipe(tomllib.loads(RECIPE), Path("t.toml"), RECIPE)).jobs
    return next(j.spec for j in jobs if j.kind == "gt" and j.model == "gpt")


def prompt_spec(shots: int) -> dict:
    """A prompt job's job.json as the interface has it: stage, prompt.shots, demos from A, predicts B."""
    return {**gt_spec(), "stage": "prompt", "prompt": {"shots": shots}, "loss": {"name": "none", "params": {}}}


def run_stage(job_dir: Path, spec: dict) -> JobDir:
    from accelerate.state import AcceleratorState, GradientState

    JobDir(job_dir).write_spec(spec)
    try:
        entry.run(job_dir)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    return JobDir(job_dir)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("prompt")
    return {k: run_stage(root / f"{k}-shot", prompt_spec(k)).path for k in (0, 3)}


def test_zero_shot_job_scores_test_and_b_by_the_label_words_next_token_probabilities(jobs):
    folder = JobDir(jobs[0])
    spec, preds, result = folder.read_spec(), folder.read_predictions(), folder.read_result()
    splits = make_splits(spec["data"], spec["seed"])
    assert set(preds) == {"test", "B"}
    for name in ("test", "B"):
        assert preds[name]["labels"] == splits[name].labels
        assert len(preds[name]["probs"]) == len(splits[name].texts)
        assert all(0 < p < 1 for p in preds[name]["probs"])
    assert result[Result.SHOTS] == 0 and result[Result.N_TEST] == 20 and result[Result.STEPS] == 0
    assert 0 <= result[Result.TEST_ACC] <= 1 and result[Result.FINAL_TEST_ACC] == result[Result.TEST_ACC]
    events = [json.loads(line) for line in folder.events.read_text().splitlines()]
    assert len(events) == 1 and events[0][Event.KIND] == Event.FINAL and Event.TEST_ACC in events[0]

    # by hand: softmax over the two label words of the LM's next-token log-probabilities
    lm, tok = load_causal_lm(spec["model"], torch.float32).eval(), load_tokenizer(spec["model"])
    fmt = prompt_format(spec["data"])
    words = [tok(w, add_special_tokens=False)["input_ids"] for w in fmt.label_words]
    assert all(len(w) == 1 for w in words) and words[0] != words[1]
    for i in (0, 7):
        ids = torch.tensor([tok(render(fmt, splits["test"].texts[i]))["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=ids).logits[0, -1].double(), dim=-1)
        dist = torch.softmax(logp[[w[0] for w in words]], dim=0)
        assert dist.sum().item() == pytest.approx(1.0)
        assert preds["test"]["probs"][i] == pytest.approx(dist[1].item(), abs=1e-5)


def test_demonstrations_are_balanced_seeded_and_shared(jobs):
    labels = [0] * 10 + [1] * 6 + [2] * 4
    five = prompt.draw_demos(labels, 5, 3, seed=0)
    assert sorted(Counter(labels[i] for i in five).values()) == [1, 2, 2]
    assert Counter(labels[i] for i in five)[2] == 1  # the remainder goes to the lowest classes
    assert prompt.draw_demos(labels, 5, 3, seed=0) == five and len(set(five)) == 5
    assert {tuple(prompt.draw_demos(labels, 5, 3, seed=s)) for s in range(5)} != {tuple(five)}
    assert Counter(labels[i] for i in prompt.draw_demos(labels, 4, 2, seed=1)) == {0: 2, 1: 2}

    three, zero = JobDir(jobs[3]), JobDir(jobs[0])
    assert three.read_result()[Result.SHOTS] == 3
    assert three.read_predictions()["test"]["probs"] != zero.read_predictions()["test"]["probs"]
    spec = three.read_spec()
    fmt, half = prompt_format(spec["data"]), make_splits(spec["data"], spec["seed"])["A"]
    prefix = prompt.demo_prefix(fmt, half, 3, 2, spec["seed"])
    assert prefix.count(" overall it was") == 3 and prefix.endswith("\n\n")
    assert prefix == prompt.demo_prefix(fmt, half, 3, 2, spec["seed"])


def test_a_transfer_learns_from_a_prompt_jobs_labels_of_b(jobs, tmp_path):
    spec = {
        **gt_spec(),
        "train_split": "B",
        "predict_split": None,
        "labels": {"from": "p" * 64, "split": "B"},
        "upstream_dir": str(jobs[3]),
    }
    train_in_process(tmp_path, spec)
    assert JobDir(tmp_path).read_result()[Result.N_TEST] == 20


def test_more_shots_than_half_a_is_a_clear_error(tmp_path):
    with pytest.raises(W2SError, match="shots = 21 asks for more demonstrations than half A"):
        run_stage(tmp_path, prompt_spec(21))
    assert not JobDir(tmp_path).result.exists()


def three_class_splits(cfg: dict, seed: int) -> dict[str, Split]:
    """Three classes of 4-word texts (good / bad / plain words): the shapes of a K = 3 task."""
    words = (("good", "great", "fun"), ("bad", "awful", "dull"), ("movie", "film", "plot"))

    def split(n: int, offset: int) -> Split:
        labels = [i % 3 for i in range(n)]
        texts = [" ".join(words[y][(i + offset + j) % 3] for j in range(4)) for i, y in enumerate(labels)]
        return Split(texts, labels, list(range(n)), n_classes=3)

    return {"A": split(12, 0), "B": split(9, 1), "test": split(9, 2)}


def test_three_classes_write_full_distributions(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt, "make_splits", three_class_splits)
    monkeypatch.setattr(prompt, "prompt_format", lambda cfg: PromptFormat("{text} it was", (" good", " bad", " movie")))
    spec = {**prompt_spec(5), "data": {**prompt_spec(5)["data"], "long_inputs": "truncate_right"}}
    preds, result = (lambda f: (f.read_predictions(), f.read_result()))(run_stage(tmp_path, spec))
    for name in ("test", "B"):
        dists = torch.tensor(preds[name]["dists"])
        assert dists.shape == (9, 3) and torch.allclose(dists.sum(dim=1), torch.ones(9))
        assert preds[name]["probs"] == pytest.approx(dists.max(dim=1).values.tolist())
    hits = (torch.tensor(preds["test"]["dists"]).argmax(dim=1) == torch.tensor(preds["test"]["labels"])).float()
    assert result[Result.TEST_ACC] == pytest.approx(hits.mean().item()) and result[Result.SHOTS] == 5
    half = three_class_splits({}, 0)["A"]
    assert Counter(half.labels[i] for i in prompt.draw_demos(half.labels, 5, 3, spec["seed"])) == {0: 2, 1: 2, 2: 1}
