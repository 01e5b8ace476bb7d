"""The trainer's speed changes (issue 11, item 3) keep what it computes, or are opt-in.

- Always on, so each must leave a tiny GPT-2 and a tiny BERT job's predictions equal within 1e-5
  to the path it replaced: SDPA attention (against eager), inference batched by length (against
  the items in their order), no attention mask for a minibatch without padding (against an
  all-ones mask), each optimiser step's examples sorted by length before they are cut into
  minibatches (against the drawn order). Fused Adam only on CUDA: its decision function is tested here.
- Opt-in and hashed when on: `[train] group_by_length` (batches are permutations covering every
  example each epoch, pad less than random ones, depend only on the seed and the step size) and
  `[train] compile` (routed through `nn.Module.compile`; the same predictions).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import train_in_process

from w2s_core.jobdir import JobDir
from w2s_core.spec.plan import build_plan, job_key
from w2s_core.spec.recipe import parse_recipe
from w2s_core.training import batching, evaluate, models, setup
from w2s_core.training.batching import (
    grouped_minibatches,
    item_length,
    minibatches,
    optimiser_batches,
    padding_share,
    training_steps,
)
from w2s_core.training.optimizers import fused_ok, make_optimizer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TOLERANCE = 1e-5
RECIPE = """
[data]
name = "synthetic"
n_train = 96
n_test = 48

[train]
epochs = 1
lr = 0.01
batch_size = 8
minibatch_size = 2
max_length = 32
{extra}
[[models]]
name = "gpt"
path = "tiny-random-gpt2"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[models]]
name = "bert"
path = "tiny-random-bert"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[transfer]]
loss = "xent"
"""


def gt_specs(extra: str = "") -> dict[str, dict]:
    """The ground-truth job spec of each tiny model, by model name."""
    text = RECIPE.format(extra=extra)
    jobs = build_plan(parse_recipe(tomllib.loads(text), Path("speed.toml"), text)).jobs
    return {j.model: j.spec for j in jobs if j.kind == "gt"}


def trained_probs(job_dir: Path, spec: dict) -> list[float]:
    train_in_process(job_dir, spec)
    return JobDir(job_dir).read_predictions()["test"]["probs"]


def max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def baseline(w2s_cache, tmp_path_factory):
    """Each tiny model's test probabilities with every always-on speed change in place."""
    root = tmp_path_factory.mktemp("base")
    probs = {name: trained_probs(root / name, spec) for name, spec in gt_specs().items()}
    for p in probs.values():  # training moved them away from the zero-initialised head's 0.5
        assert max(abs(x - 0.5) for x in p) > 0.02
    return probs


# --- always-on changes: the same predictions as the path each replaced ------------------------


def eager(monkeypatch):
    monkeypatch.setattr(models, "attention_choice", lambda auto, config: "eager")


def unsorted_eval(monkeypatch):
    monkeypatch.setattr(evaluate, "eval_order", lambda items: list(range(len(items))))


def always_masked(monkeypatch):
    monkeypatch.setattr(setup, "unpadded", lambda seqs: False)


def unsorted_steps(monkeypatch):
    monkeypatch.setattr(batching, "sorted_step", lambda group, lengths: group)


@pytest.mark.parametrize("model", ["gpt", "bert"])
@pytest.mark.parametrize("old_path", [eager, unsorted_eval, always_masked, unsorted_steps], ids=lambda f: f.__name__)
def test_speed_changes_keep_predictions(baseline, tmp_path, monkeypatch, model, old_path):
    old_path(monkeypatch)
    probs = trained_probs(tmp_path / model, gt_specs()[model])
    assert max_diff(probs, baseline[model]) < TOLERANCE


def test_backbones_load_with_sdpa_and_agree_with_eager(w2s_cache):
    ids, mask = models.collate([[5, 6, 7, 8], [9, 10]], 0)  # the second row is padded
    for spec in (gt_specs()["gpt"]["model"], gt_specs()["bert"]["model"]):
        sdpa = models.load_backbone(spec, torch.float32)
        plain = models.load_backbone(spec, torch.float32, attention="eager")
        assert sdpa.config._attn_implementation == "sdpa" and plain.config._attn_implementation == "eager"
        with torch.no_grad():
            a, b = sdpa(input_ids=ids, attention_mask=mask)[0], plain(input_ids=ids, attention_mask=mask)[0]
        assert (a - b).abs()[mask.bool()].max() < TOLERANCE


def test_unpadded_minibatches_skip_the_mask_and_match_an_all_ones_mask(w2s_cache, tmp_path):
    """The always_masked comparison above proves something only if some minibatches had no padding."""
    seen = []
    real = setup.unpadded

    def spy(seqs):
        seen.append(real(seqs))
        return seen[-1]

    assert real([[1, 2], [3, 4]]) and not real([[1, 2], [3]])
    spec = gt_specs()["gpt"]["model"]
    clf, _ = models.load_classifier(spec, dtype=torch.float32, lora=None, grad_checkpointing=False)
    torch.nn.init.normal_(clf.head.weight)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with torch.no_grad():
        assert torch.equal(clf(ids, None), clf(ids, torch.ones_like(ids)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(setup, "unpadded", spy)
        train_in_process(tmp_path / "job", gt_specs()["gpt"])
    assert any(seen) and not all(seen)


def test_eval_order_sorts_by_length_and_pads_less():
    rng = random.Random(0)
    items = [[1] * rng.randint(3, 60) for _ in range(200)]
    order = evaluate.eval_order(items)
    assert sorted(order) == list(range(200))
    assert [len(items[i]) for i in order] == sorted((len(x) for x in items), reverse=True)
    lengths = [len(x) for x in items]
    cut = lambda idx: [idx[s : s + 16] for s in range(0, len(idx), 16)]  # noqa: E731
    assert padding_share(cut(order), lengths) < 0.1 < padding_share(cut(list(range(200))), lengths)


def test_item_lengths():
    assert item_length([1, 2, 3]) == 3
    assert item_length(([1, 2], [1, 2, 3, 4])) == 4  # a pair pads to its longer reply
    assert item_length(([1, 2, 3], [[4], [5, 6]])) == 5  # chess: context + longest candidate
    assert item_length(torch.zeros(7)) == 7
    assert item_length((torch.zeros(7), torch.zeros(7))) == 7  # a pairwise probe's two feature vectors


# --- fused Adam on CUDA only ------------------------------------------------------------------


def test_fused_adam_only_when_every_parameter_is_a_cuda_float():
    def param(device: str, dtype=torch.float32):
        return SimpleNamespace(device=torch.device(device), dtype=dtype)

    assert fused_ok([param("cuda"), param("cuda", torch.bfloat16)])
    assert not fused_ok([param("cuda"), param("cpu")])
    assert not fused_ok([param("cuda", torch.int64)])
    assert not fused_ok([param("cpu")])
    assert not fused_ok([])
    opt = make_optimizer("adamw", [torch.nn.Parameter(torch.zeros(3))], lr=1e-3, weight_decay=0.0)
    assert not opt.defaults.get("fused")  # a CPU job trains exactly as before


def test_sorted_steps_keep_each_step_and_minibatch_size_and_pad_less():
    lengths = lengths_of(640)
    plain = list(training_steps([[0] * k for k in lengths], 8, 4, 640, torch.Generator().manual_seed(1), False, False))
    ranked = list(training_steps([[0] * k for k in lengths], 8, 4, 640, torch.Generator().manual_seed(1), False, True))
    for a, b in zip(plain, ranked, strict=True):
        assert sorted(i for c in a for i in c) == sorted(i for c in b for i in c)  # the same examples share a step
        assert [len(c) for c in a] == [len(c) for c in b]
        assert [lengths[i] for c in b for i in c] == sorted((lengths[i] for c in a for i in c), reverse=True)
    flat = lambda steps: [c for s in steps for c in s]  # noqa: E731
    assert padding_share(flat(ranked), lengths) < 0.25 < 0.4 < padding_share(flat(plain), lengths)


# --- group_by_length ----------------------------------------------------------------------------


def lengths_of(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 200) for _ in range(n)]


def grouped(lengths, step, size, total, seed=0) -> list[list[int]]:
    return list(grouped_minibatches(lengths, step, size, total, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("n", [96, 100, 5])
def test_grouped_batches_cover_every_example_each_epoch(n):
    lengths = lengths_of(n)
    for epochs in (1, 2, 3):
        chunks = grouped(lengths, 8, 4, n * epochs)
        assert Counter(i for c in chunks for i in c) == {i: epochs for i in range(n)}
        steps = [sum(map(len, g)) for g in optimiser_batches(iter(chunks), 2)]
        assert all(s == 8 for s in steps[:-1]) and 0 < steps[-1] <= 8  # only the last step may be short


def test_grouped_batches_pad_less_than_random_ones():
    lengths = lengths_of(1000)
    gen = torch.Generator().manual_seed(0)
    random_chunks = list(minibatches(len(lengths), 8, 2000, gen))
    grouped_chunks = grouped(lengths, 32, 8, 2000)
    assert padding_share(grouped_chunks, lengths) < 0.1 < 0.3 < padding_share(random_chunks, lengths)


def test_grouped_batches_are_deterministic_per_seed_and_shuffled():
    lengths = lengths_of(500)
    assert grouped(lengths, 16, 4, 1000, seed=3) == grouped(lengths, 16, 4, 1000, seed=3)
    assert grouped(lengths, 16, 4, 1000, seed=3) != grouped(lengths, 16, 4, 1000, seed=4)
    # the steps' order is shuffled: the longest step is not always first, lengths do not drift
    firsts = [max(lengths[i] for i in grouped(lengths, 16, 16, 16, seed=s)[0]) for s in range(20)]
    assert len(set(firsts)) > 5


def test_grouped_steps_do_not_depend_on_the_minibatch():
    """Each optimiser step holds the same examples whether cut into 1, 2 or 4 minibatches (or processes)."""
    lengths = lengths_of(300)
    steps = {
        size: [
            sorted(i for c in g for i in c)
            for g in optimiser_batches(iter(grouped(lengths, 16, size, 700)), 16 // size)
        ]
        for size in (4, 8, 16)
    }
    assert steps[4] == steps[8] == steps[16]


def test_group_by_length_and_compile_are_hashed_only_when_on():
    base = gt_specs()["gpt"]
    key = job_key(base, None)
    for name in ("group_by_length", "compile"):
        assert job_key({**base, "train": {**base["train"], name: False}}, None) == key
        assert job_key({**base, "train": {**base["train"], name: True}}, None) != key
    assert gt_specs("group_by_length = true\ncompile = true\n")["gpt"]["train"]["group_by_length"] is True


def test_group_by_length_job_trains_on_grouped_steps(w2s_cache, tmp_path, monkeypatch):
    calls = []
    real = batching.grouped_minibatches

    def spy(*args):
        calls.append(args[1:3])  # (step, minibatch size)
        return real(*args)

    monkeypatch.setattr(batching, "grouped_minibatches", spy)
    probs = trained_probs(tmp_path / "grouped", gt_specs("group_by_length = true\n")["bert"])
    assert calls == [(8, 2)] and len(probs) == 48


# --- compile --------------------------------------------------------------------------------------


def test_compile_routes_through_module_compile_with_the_same_predictions(baseline, tmp_path, monkeypatch):
    """Inductor takes minutes on this CPU; Dynamo's capture with the eager backend checks the wiring."""
    compiled = []
    real = torch.nn.Module.compile

    def quick(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        return real(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", quick)
    probs = trained_probs(tmp_path / "compiled", gt_specs("compile = true\n")["bert"])
    # regional compilation (compiling.py): each of BERT's named layer classes' instances, not the wrapper
    assert compiled and set(compiled) == {"BertEmbeddings", "BertLayer"}
    assert max_diff(probs, baseline["bert"]) < TOLERANCE


def test_a_model_without_repeated_blocks_is_compiled_whole(monkeypatch):
    from w2s_core.training.compiling import blocks, compile_model

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert blocks(plain) == [] and compile_model(plain) == "Sequential (whole)"
    plain._no_split_modules = ["Linear", "Sequential"]  # the outermost named module: nested ones go with it
    assert compile_model(plain) == "1 x Sequential" and compiled == ["Sequential", "Sequential"]
    plain._no_split_modules = ["Linear"]  # each instance; the wrapper stays eager
    assert compile_model(plain) == "2 x Linear" and compiled[2:] == ["Linear", "Linear"]
