"""K-class tasks and per-example candidate sets (issue 10 item 5): losses, metrics, labels, store, training.

- Losses on [N, C] logits: padded candidates (logit PAD_LOGIT, target 0) change nothing; logconf
  beyond two ways hardens to the student's argmax and needs no batch target.
- Metrics take distributions (ragged allowed): accuracy by argmax, one-vs-rest macro AUROC for
  K > 2 (NaN where undefined and for ragged sets), agreement.
- Inference pads each minibatch to a common width and strips each example back to its candidates.
- A K = 3 task (Split objects built here) trains a tiny-random-bert finetune and a probe through
  `loop.run`; predictions.json holds "dists", and a transfer learns from them.
"""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import train_in_process

from w2s_core.analysis.stats import accuracy, agreement, auroc
from w2s_core.data import Split
from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import JobDir
from w2s_core.store import Store
from w2s_core.training.losses import PAD_LOGIT, argmax_target, make_batch_target, make_loss

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


# --- losses ---------------------------------------------------------------------------------


def _batch(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    weak = torch.softmax(torch.randn(n, c, generator=g) * 2, dim=-1)
    weak[0] = torch.nn.functional.one_hot(torch.tensor(1), c).float()  # a confident label: 0·log 0 cases
    return logits, weak


def _pad(logits: torch.Tensor, weak: torch.Tensor, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = logits.shape[0]
    return (
        torch.cat([logits, torch.full((n, extra), PAD_LOGIT)], dim=1),
        torch.cat([weak, torch.zeros(n, extra)], dim=1),
    )


LOSS_CASES = [
    ("xent", {}),
    ("kl", {}),
    ("product", {}),
    ("product", {"alpha": 0.0, "beta": 0.0}),  # uniform target: the padding must not share it
    ("product", {"alpha": 0.5, "beta": 2.0}),
    ("logconf", {"alpha": 0.7, "warmup_frac": 0.1}),
]


@pytest.mark.parametrize("name,params", LOSS_CASES)
@pytest.mark.parametrize("classes", [3, 0])
def test_padded_candidates_contribute_nothing(name, params, classes):
    logits, weak = _batch(9, 3, seed=1)
    loss = make_loss(name, params, classes)
    plain = loss(logits, weak, 0.5)
    padded_logits, padded_weak = _pad(logits, weak, 4)
    assert loss(padded_logits, padded_weak, 0.5).item() == pytest.approx(plain.item(), rel=1e-6, abs=1e-7)
    # bf16 rounds PAD_LOGIT to -9984: still a padded candidate
    low = loss(padded_logits.bfloat16(), padded_weak, 0.5).item()
    assert low == pytest.approx(loss(logits.bfloat16(), weak, 0.5).item(), rel=1e-6, abs=1e-7)


def test_logconf_beyond_two_ways_hardens_to_the_argmax():
    logits, weak = _batch(12, 4, seed=2)
    step, alpha, warm = 0.05, 0.6, 0.2
    a = alpha * step / warm
    rows = logits.tolist()
    want = []
    for r, w in zip(rows, weak.tolist()):
        logp = [v - math.log(sum(math.exp(x) for x in r)) for v in r]
        top = max(range(4), key=lambda k: r[k])
        target = [(1 - a) * wk + a * (k == top) for k, wk in enumerate(w)]
        want.append(-sum(t * lp for t, lp in zip(target, logp)))
    got = make_loss("logconf", {"alpha": alpha, "warmup_frac": warm}, 4)(logits, weak, step)
    assert got.item() == pytest.approx(sum(want) / len(want), rel=1e-5)
    # per-example: a minibatch's loss on its own rows is the batch's on those rows
    halves = [make_loss("logconf", {"alpha": alpha}, 4)(logits[s], weak[s], step) for s in (slice(0, 6), slice(6, 12))]
    whole = make_loss("logconf", {"alpha": alpha}, 4)(logits, weak, step)
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)
    # K = 2 still uses the batch's class share, which the argmax does not: they differ on this batch
    two_l, two_w = logits[:, :2], torch.tensor([[0.1, 0.9]]).repeat(12, 1)  # share 0.9: most rows harden to 1
    share = make_loss("logconf", {"alpha": 1.0, "warmup_frac": 0.0}, 2)(two_l, two_w, 1.0)
    argmax = torch.nn.functional.cross_entropy(two_l, argmax_target(two_l, two_w, 1.0, 1.0, 0.0))
    assert share.item() != pytest.approx(argmax.item(), rel=1e-3)


def test_only_two_way_logconf_has_a_batch_target():
    assert make_batch_target("logconf", {}, 2) is not None
    assert make_batch_target("logconf", {}, 3) is None
    assert make_batch_target("logconf", {}, 0) is None
    assert make_batch_target("xent", {}, 2) is None


def test_loss_shapes_must_agree():
    logits, weak = _batch(4, 3)
    with pytest.raises(W2SError, match="same classes"):
        make_loss("xent", {}, 3)(logits, weak[:, :2], 0.0)


# --- metrics --------------------------------------------------------------------------------


def _k_data(n: int, k: int, seed: int) -> tuple[list[list[float]], list[int]]:
    rng = random.Random(seed)
    labels = [rng.randrange(k) for _ in range(n)]
    dists = []
    for y in labels:
        raw = [rng.choice([0.1, 0.3, 0.5]) + (0.4 if j == y and rng.random() < 0.6 else 0.0) for j in range(k)]
        dists.append([v / sum(raw) for v in raw])
    return dists, labels


def _pair_auroc(scores: list[float], positive: list[bool]) -> float:
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(3))
def test_k_class_accuracy_and_one_vs_rest_auroc(seed):
    dists, labels = _k_data(60, 4, seed)
    want_acc = sum(max(range(4), key=lambda j: d[j]) == y for d, y in zip(dists, labels)) / 60
    assert accuracy(dists, labels) == pytest.approx(want_acc)
    assert accuracy(np.array(dists), np.array(labels)) == pytest.approx(want_acc)
    per_class = [_pair_auroc([d[k] for d in dists], [y == k for y in labels]) for k in range(4)]
    assert auroc(dists, labels) == pytest.approx(sum(per_class) / 4)


def test_auroc_over_classes_present_and_nan_when_undefined():
    dists = [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]]
    labels = [0, 1, 0, 1]  # class 2 has no positives: left out of the macro mean
    want = (_pair_auroc([d[0] for d in dists], [y == 0 for y in labels]) + 1.0) / 2
    assert auroc(dists, labels) == pytest.approx(want)
    assert math.isnan(auroc([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3]], [0, 0]))  # no class has both
    ragged = [[0.2, 0.8], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]
    assert math.isnan(auroc(ragged, [1, 1, 0]))
    assert accuracy(ragged, [1, 1, 0]) == 1.0
    # two-way distributions score exactly as 1-D P(class 1)
    two = [[1 - p, p] for p in (0.2, 0.7, 0.4, 0.9)]
    assert auroc(two, [0, 1, 1, 1]) == auroc([0.2, 0.7, 0.4, 0.9], [0, 1, 1, 1])
    with pytest.raises(W2SError, match="index"):
        accuracy(ragged, [2, 1, 0])


def test_agreement_with_distributions():
    student = [[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.5, 0.1, 0.4]]
    weak = [[0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    gt = [0, 2, 1, 0]  # weak right, wrong, right, wrong
    got = agreement(student, weak, gt)
    assert got == {"agree": 0.5, "agree_weak_wrong": 0.0, "agree_weak_right": 1.0}


# --- inference over ragged candidate sets ---------------------------------------------------


def test_inference_pads_minibatches_and_strips_each_example():
    """Chess-like logits: each minibatch is as wide as its widest example; predictions come back per example."""
    from accelerate import Accelerator

    from w2s_core.training.evaluate import predict
    from w2s_core.training.setup import Setup

    rng = random.Random(0)
    widths = [rng.randint(1, 6) for _ in range(11)]
    items = [torch.randn(w) * 3 for w in widths]

    def batch(rows):  # pads to the minibatch's widest, as the choice scorer does
        width = max(len(r) for r in rows)
        return (torch.stack([torch.cat([r, torch.full((width - len(r),), PAD_LOGIT)]) for r in rows]),)

    setup = Setup(torch.nn.Identity(), batch, {"test": items}, torch.device("cpu"), widths={"test": widths})
    loop = SimpleNamespace(acc=Accelerator(cpu=True), module=torch.nn.Identity(), setup=setup, n_classes=0)
    loop.job = {"train": {"minibatch_size": 1}}  # 4 items per inference minibatch: widths differ
    got = predict(loop, "test")
    assert [len(d) for d in got] == widths
    for d, logits in zip(got, items):
        assert d == pytest.approx(torch.softmax(logits, 0).tolist(), abs=1e-6)


# --- labels ---------------------------------------------------------------------------------


def test_training_labels_for_k_classes_and_candidates():
    from w2s_core.training.labels import training_labels

    job = {"labels": {"from": "f" * 64, "split": "B"}, "train_split": "B"}
    k3 = Split(["a", "b"], [2, 0], [0, 1], n_classes=3)
    assert training_labels(job, k3, None).tolist() == [[0, 0, 1], [1, 0, 0]]
    up = {"B": {"probs": [0.5, 0.6], "dists": [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]}}
    assert torch.allclose(training_labels(job, k3, up), torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    with pytest.raises(W2SError, match="two-way"):
        training_labels(job, k3, {"B": {"probs": [0.5, 0.6]}})
    chess = Split(["p", "q"], [1, 0], [0, 1], choices=[("a", "b"), ("c", "d", "e")], n_classes=0)
    assert training_labels(job, chess, None).tolist() == [[0, 1, 0], [1, 0, 0]]
    ragged = {"B": {"probs": [0.9, 0.5], "dists": [[0.1, 0.9], [0.5, 0.3, 0.2]]}}
    assert torch.allclose(training_labels(job, chess, ragged), torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.3, 0.2]]))
    with pytest.raises(W2SError, match="stale"):
        training_labels(job, chess, {"B": {"probs": [0.9, 0.5], "dists": [[0.1, 0.9], [0.5, 0.5]]}})


# --- store ----------------------------------------------------------------------------------


def test_store_keeps_distributions(tmp_path):
    with Store.open(tmp_path) as st:
        dists = [[0.2, 0.5, 0.3], [0.9, 0.1], [1.0]]
        st.add_predictions("j1", "test", [0.5, 0.9, 1.0], [1, 0, 0], index=[4, 0, 2], dists=dists)
        assert st.predictions("j1", "test") == ([0.9, 1.0, 0.5], [0, 0, 1])  # position order
        assert st.prediction_dists("j1", "test") == [[0.9, 0.1], [1.0], [0.2, 0.5, 0.3]]
        st.add_predictions("j1", "B", [0.1, 0.7])
        assert st.prediction_dists("j1", "B") is None  # a two-way task stores none
        with pytest.raises(ValueError, match="distributions"):
            st.add_predictions("j1", "A", [0.1, 0.7], dists=[[0.9, 0.1]])


# --- a K = 3 task through the training loop ------------------------------------------------

RECIPE = """
name = "k3"
seeds = [0]
[data]
name = "synthetic"
n_train = 96
n_test = 48
[train]
epochs = 4
lr = 0.01
batch_size = 16
minibatch_size = 8
max_length = 16
[[models]]
name = "weak"
path = "tiny-random-bert"
tiny = { hidden_size = 16, num_layers = 1 }
[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = { hidden_size = 32, num_layers = 1 }
[[transfer]]
loss = "logconf"
"""

WORDS = (("good", "great", "superb", "lovely"), ("bad", "awful", "dull", "poor"), ("movie", "film", "story", "plot"))


def k3_split(n: int, seed: int) -> Split:
    """Texts of 5 words, mostly from their class's word group: a three-way task tiny models learn."""
    rng = random.Random(seed)
    labels = [i % 3 for i in range(n)]
    texts = [
        " ".join(rng.choice(WORDS[y if rng.random() < 0.8 else rng.randrange(3)]) for _ in range(5)) for y in labels
    ]
    return Split(texts, labels, list(range(n)), n_classes=3)


def k3_splits(cfg: dict, seed: int) -> dict[str, Split]:
    return {"A": k3_split(48, 1), "B": k3_split(48, 2), "test": k3_split(48, 3)}


@pytest.fixture(scope="module")
def k3_runs(tmp_path_factory):
    """The weak model's GT finetune on the K = 3 task, then a probe transfer (logconf) from its dists."""
    from pathlib import Path

    from w2s_core.spec.plan import build_plan
    from w2s_core.spec.recipe import parse_recipe
    from w2s_core.training import loop

    root = tmp_path_factory.mktemp("k3")
    jobs = build_plan(parse_recipe(tomllib.loads(RECIPE), Path("k3.toml"), RECIPE)).jobs
    weak = next(j for j in jobs if j.kind == "gt" and j.model == "weak").spec
    transfer = next(j for j in jobs if j.kind == "transfer").spec
    transfer = {
        **transfer,
        "upstream_dir": str(root / "weak"),
        "train": {**transfer["train"], "mode": "probe", "lr": 0.2, "epochs": 10},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("W2S_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(loop, "make_splits", k3_splits)
        train_in_process(root / "weak", weak)
        train_in_process(root / "probe", transfer)
    return {name: JobDir(root / name) for name in ("weak", "probe")}


def test_k3_jobs_write_distributions_and_learn(k3_runs):
    for name, folder in k3_runs.items():
        preds, result = folder.read_predictions(), folder.read_result()
        for split in ("test", "B" if name == "weak" else "A"):
            p = preds[split]
            assert all(len(d) == 3 and sum(d) == pytest.approx(1.0, abs=1e-5) for d in p["dists"]), name
            assert p["probs"] == [max(d) for d in p["dists"]]
        labels = preds["test"]["labels"]
        assert result["test_acc"] == accuracy(preds["test"]["dists"], labels)
        assert result["test_auroc"] == pytest.approx(auroc(preds["test"]["dists"], labels))
        assert result["test_acc"] > 0.6, (name, result["test_acc"])  # chance is 1/3
    probe = k3_runs["probe"].read_result()
    assert not math.isnan(probe["agree"]) and probe["train_label_acc"] > 0.6


def test_chess_refuses_probe_mode():
    from w2s_core.training.setup import build

    job = {"data": {"kind": "chess"}, "train": {"mode": "probe"}}
    with pytest.raises(InputError, match="probe"):
        build(job, {}, torch.device("cpu"))


# --- chess-like candidate sets through the training loop ------------------------------------

CHESS_RECIPE = """
name = "moves"
seeds = [0]
[data]
name = "synthetic"
n_train = 96
n_test = 32
[train]
epochs = 6
lr = 0.01
batch_size = 8
minibatch_size = 4
max_length = 40
val_size = 8
[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1, tokenizer = "chars" }
[[models]]
name = "strong"
path = "tiny-random-gpt2"
tiny = { hidden_size = 32, num_layers = 1, tokenizer = "chars" }
[[transfer]]
loss = "logconf"
"""


def move_split(n: int, seed: int) -> Split:
    """Positions with 1 to 5 candidate moves; the right one is the only move onto rank 8."""
    rng = random.Random(seed)
    texts, labels, choices = [], [], []
    for _ in range(n):
        files = rng.sample("abcdefgh", rng.randint(1, 5))
        moves = sorted(f"{f}{rng.randint(2, 6)}{f}{rng.randint(3, 7)}" for f in files[1:])
        right = f"{files[0]}7{files[0]}8"
        cands = sorted([*moves, right])
        texts.append(f"position {rng.randint(10, 99)}:")
        labels.append(cands.index(right))
        choices.append(tuple(cands))
    return Split(texts, labels, list(range(n)), choices=choices, n_classes=0)


def move_splits(cfg: dict, seed: int) -> dict[str, Split]:
    return {"A": move_split(48, 1), "B": move_split(48, 2), "test": move_split(32, 3)}


def test_candidate_sets_train_through_the_loop(tmp_path, monkeypatch):
    """Ragged candidate sets (as chess): labels cut per minibatch, dists per example, AUROC NaN, transfer from dists."""
    from pathlib import Path

    from w2s_core.spec.plan import build_plan
    from w2s_core.spec.recipe import parse_recipe
    from w2s_core.training import loop

    jobs = build_plan(parse_recipe(tomllib.loads(CHESS_RECIPE), Path("m.toml"), CHESS_RECIPE)).jobs
    weak = next(j for j in jobs if j.kind == "gt" and j.model == "weak").spec
    transfer = next(j for j in jobs if j.kind == "transfer").spec
    chess = {"kind": "chess"}
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loop, "make_splits", move_splits)
    train_in_process(tmp_path / "weak", {**weak, "data": {**weak["data"], **chess}})
    transfer = {**transfer, "data": {**transfer["data"], **chess}, "upstream_dir": str(tmp_path / "weak")}
    train_in_process(tmp_path / "strong", transfer)
    test = move_split(32, 3)
    chance = sum(1 / len(c) for c in test.choices) / len(test.choices)
    for name in ("weak", "strong"):
        folder = JobDir(tmp_path / name)
        preds, result = folder.read_predictions(), folder.read_result()
        assert [len(d) for d in preds["test"]["dists"]] == [len(c) for c in test.choices]
        assert preds["test"]["probs"] == [max(d) for d in preds["test"]["dists"]]
        assert result["test_acc"] == accuracy(preds["test"]["dists"], test.labels)
        assert math.isnan(result["test_auroc"]) and not math.isnan(result["val_loss"])
        assert result["test_acc"] > chance + 0.15, (name, result["test_acc"], chance)
