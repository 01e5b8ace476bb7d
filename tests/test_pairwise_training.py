"""Pairwise reward modelling (issue 10 item 3) through the training loop.

A scalar head reads `pair_text(prompt, reply)` for both replies; logits are (r0, r1), so the
softmax is σ(Δr), cross-entropy against the preferred reply is the Bradley–Terry loss, and a weak
reward model's predictions are its soft preferences σ(Δr). Splits of easy synthetic pairs (the
preferred reply is made of positive words, the other of negative ones, in a random order) are built
here and handed to `loop.run`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from conftest import train_in_process

from w2s_core.analysis.stats import accuracy
from w2s_core.data import Split, pair_text
from w2s_core.jobdir import JobDir, Result
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.training.lengths import drop_too_long, read_texts

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RECIPE = """
name = "rm"
seeds = [0]
[data]
name = "synthetic"
n_train = 128
n_test = 48
[train]
epochs = 3
lr = 0.01
batch_size = 16
minibatch_size = 8
max_length = 32
[[models]]
name = "weak"
path = "tiny-random-bert"
tiny = { hidden_size = 16, num_layers = 1 }
[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = { hidden_size = 32, num_layers = 1 }
[[transfer]]
loss = "xent"
"""

GOOD = ("good", "great", "superb", "lovely", "warm", "fresh")
BAD = ("bad", "awful", "dull", "poor", "cold", "stale")
PROMPTS = ("the movie", "this film", "the story was", "the plot")


def pairs(n: int, seed: int) -> Split:
    """Prompts with a preferred (positive words) and a rejected (negative words) reply, in a seeded random order."""
    rng = random.Random(seed)
    texts, labels, choices = [], [], []
    for _ in range(n):
        chosen = " ".join(rng.choice(GOOD) for _ in range(3))
        rejected = " ".join(rng.choice(BAD) for _ in range(3))
        first = rng.random() < 0.5
        texts.append(rng.choice(PROMPTS))
        labels.append(0 if first else 1)
        choices.append((chosen, rejected) if first else (rejected, chosen))
    return Split(texts, labels, list(range(n)), choices=choices, n_classes=2)


def pair_splits(cfg: dict, seed: int) -> dict[str, Split]:
    return {"A": pairs(64, 1), "B": pairs(64, 2), "test": pairs(48, 3)}


def pairwise(spec: dict, **train) -> dict:
    return {**spec, "data": {**spec["data"], "kind": "pairwise"}, "train": {**spec["train"], **train}}


@pytest.fixture(scope="module")
def rm_runs(tmp_path_factory):
    """The weak reward model (finetune, GT), a strong probe RM learning from its σ(Δr), and the strong GT probe."""
    from w2s_core.training import loop

    root = tmp_path_factory.mktemp("rm")
    jobs = build_plan(parse_recipe(tomllib.loads(RECIPE), Path("rm.toml"), RECIPE)).jobs
    weak = next(j for j in jobs if j.kind == "gt" and j.model == "weak").spec
    strong = next(j for j in jobs if j.kind == "gt" and j.model == "strong").spec
    transfer = next(j for j in jobs if j.kind == "transfer").spec
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("W2S_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(loop, "make_splits", pair_splits)
        train_in_process(root / "weak", pairwise(weak))
        transfer = {**transfer, "upstream_dir": str(root / "weak")}
        train_in_process(root / "probe", pairwise(transfer, mode="probe", lr=0.05, epochs=6))
        train_in_process(root / "probe-gt", pairwise(strong, mode="probe", lr=0.05, epochs=6))
    return {name: JobDir(root / name) for name in ("weak", "probe", "probe-gt")}


def test_reward_model_learns_preferences(rm_runs):
    """Pairwise accuracy well above chance; predictions are two-way P(choice 1) = σ(r1 − r0), no dists."""
    preds, result = rm_runs["weak"].read_predictions(), rm_runs["weak"].read_result()
    assert "dists" not in preds["test"]
    assert result[Result.TEST_ACC] == accuracy(preds["test"]["probs"], preds["test"]["labels"])
    assert result[Result.TEST_ACC] > 0.8, result[Result.TEST_ACC]
    assert result["train_label_acc"] == 1.0  # GT labels


def test_probe_reward_model_learns_from_weak_preferences(rm_runs):
    weak_b = rm_runs["weak"].read_predictions()["B"]["probs"]
    result = rm_runs["probe"].read_result()
    # the transfer trained on the weak RM's soft preferences: their accuracy is the weak model's on B
    labels_b = pairs(64, 2).labels
    assert result["train_label_acc"] == accuracy(weak_b, labels_b)
    assert result[Result.TEST_ACC] > 0.75, result[Result.TEST_ACC]
    assert not math.isnan(result["agree"])
    assert rm_runs["probe-gt"].read_result()[Result.TEST_ACC] > 0.75


def test_reward_head_scores_each_reply_alone():
    """Swapping the two replies swaps the logits: each is r(pair_text(prompt, reply)), nothing else."""
    from w2s_core.spec.registry import model_defaults
    from w2s_core.training.models import PairScores, collate, encode, load_classifier

    spec = {**model_defaults("tiny-random-bert"), "tiny": {"hidden_size": 16, "num_layers": 1}}
    model, tok = load_classifier(spec, dtype=torch.float32, lora=None, grad_checkpointing=False, n_outputs=1)
    assert model.head.weight.shape == (1, 16) and not model.head.weight.any()  # zero-init: σ(0) = 1/2
    torch.nn.init.normal_(model.head.weight)
    rm = PairScores(model).eval()
    a = encode(tok, [pair_text("the plot", "good great"), pair_text("the movie", "bad")], 32)
    b = encode(tok, [pair_text("the plot", "dull poor awful"), pair_text("the movie", "lovely")], 32)
    forward = rm(*collate(a + b, tok.pad_token_id))
    swapped = rm(*collate(b + a, tok.pad_token_id))
    assert forward.shape == (2, 2) and forward[0, 0] != forward[0, 1]
    assert torch.allclose(forward, swapped.flip(1), atol=1e-6)


def test_drop_mode_measures_both_pair_texts(tmp_path, monkeypatch):
    """An example whose longer reply is too long for a model is dropped, though its prompt is short."""
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    split = Split(
        ["the movie", "the plot", "the film"],
        [0, 1, 0],
        [0, 1, 2],
        choices=[("good", "bad"), ("good", " ".join(["great"] * 40)), ("dull", "fine")],
        n_classes=2,
    )
    texts, owners = read_texts(split, "pairwise")
    assert texts[3] == pair_text("the plot", " ".join(["great"] * 40)) and owners == [0, 0, 1, 1, 2, 2]
    entry = {"name": "m", "path": "tiny-random-bert", "tiny": {"hidden_size": 16, "num_layers": 1}, "max_length": 24}
    kept, dropped = drop_too_long([entry], {"test": split}, "pairwise")
    assert dropped == {"test": 1} and kept["test"].texts == ["the movie", "the film"]
    assert kept["test"].choices == [("good", "bad"), ("dull", "fine")] and kept["test"].positions == [0, 2]
    _, as_classify = drop_too_long([entry], {"test": split}, "classify")
    assert as_classify == {"test": 0}  # the prompt alone fits: measuring it would keep the example
