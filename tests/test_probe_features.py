"""Probe-mode feature extraction (issue 14, item 7): the job's compute dtype, passes by a token budget.

What is checked, on a CPU (float32, where the results must not change):
- the features equal the path before issue 14 (a fixed batch of max(minibatch, 32) inputs, longest
  first, always with an attention mask), re-implemented here, within 1e-6, and each row is its own
  text's (extracted alone), so the cache holds the features in the original example order;
- `token_batches`: every input once, longest first, no pass over its budget unless it is one input,
  and passes of short inputs hold more inputs than the old fixed batch;
- the cache key: a float32 entry keeps the name it had before (existing CPU caches stay valid); a
  bf16 entry gets another, and bf16 features, close to float32's, are not float32's;
- a probe job extracts in its compute dtype: float32 for dtype "auto" on a CPU, bf16 for "bfloat16".
"""

from __future__ import annotations

import json

import pytest
import torch

from w2s_core.spec.models import model_fingerprint, sha256_text
from w2s_core.spec.registry import model_defaults
from w2s_core.training import features, models, setup

# lengths from 1 to ~40 tokens, repeated words so the tiny vocabularies know them
WORDS = "the movie was great not good a very dull and boring film with weak plot fun".split()
TEXTS = [" ".join(WORDS[(i * 7) % len(WORDS) :] + WORDS[: (i * 3) % 24]) for i in range(70)] + ["", "fun"]
MAX_LENGTH = 32


def old_features(spec: dict, texts: list[str], batch_size: int) -> torch.Tensor:
    """The extraction before issue 14: fp32, fixed batches of `batch_size` longest first, a mask always."""
    backbone = models.load_backbone(spec, torch.float32).eval()
    pooling = models.POOLING[models.model_arch(spec, backbone.config)]
    tok = models.load_tokenizer(spec)
    ids = models.encode(tok, texts, MAX_LENGTH)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    out = torch.empty((len(ids), backbone.config.hidden_size))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = models.collate([ids[i] for i in rows], tok.pad_token_id)
            out[rows] = models.pool(backbone(input_ids=input_ids, attention_mask=mask)[0], mask, pooling)
    return out


@pytest.mark.parametrize("path", ["tiny-random-gpt2", "tiny-random-bert"])  # last-token and mean pooling
def test_features_equal_the_old_path_in_the_original_order(w2s_cache, path):
    spec = model_defaults(path)
    new = features.cached_features(spec, TEXTS, max_length=MAX_LENGTH, batch_size=4, device="cpu")
    old = old_features(spec, TEXTS, 32)
    assert new.dtype == torch.float32 and new.shape == old.shape
    assert (new - old).abs().max().item() < 1e-6
    for row in (0, 5, len(TEXTS) - 2, len(TEXTS) - 1):  # the cached rows are in the input order
        alone = features.extract_features(spec, [TEXTS[row]], max_length=MAX_LENGTH, batch_size=1, device="cpu")
        assert (new[row] - alone[0]).abs().max().item() < 1e-6
    assert not torch.allclose(new[0], new[5])  # different texts: the order check can fail


def test_token_batches_fill_a_budget_longest_first():
    lengths = [3, 40, 1, 17, 40, 8, 8, 2, 33, 5] * 7
    budget = 4 * 40
    batches = features.token_batches(lengths, budget)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every input once
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert len(b) == 1 or lengths[b[0]] * len(b) <= budget  # padded tokens within the budget
    assert len(batches[0]) == 4 and max(len(b) for b in batches) >= 4 * 4  # short inputs: far more per pass
    assert features.token_batches([500, 2], 100) == [[0], [1]]  # one input over the budget still runs alone


def test_the_cache_key_names_the_dtype_only_when_it_is_not_float32(w2s_cache):
    spec = model_defaults("tiny-random-bert")
    before = sha256_text(json.dumps([model_fingerprint(spec), "mean", MAX_LENGTH, features.texts_digest(TEXTS)]))
    assert features.features_key(spec, TEXTS, MAX_LENGTH, torch.float32, "right") == before
    assert features.features_key(spec, TEXTS, MAX_LENGTH, torch.bfloat16, "right") != before
    fp32 = features.cached_features(spec, TEXTS, max_length=MAX_LENGTH, batch_size=32, device="cpu")
    bf16 = features.cached_features(
        spec, TEXTS, max_length=MAX_LENGTH, batch_size=32, device="cpu", dtype=torch.bfloat16
    )
    assert bf16.dtype == torch.float32  # stored in float32 whatever the compute dtype
    assert not torch.equal(fp32, bf16) and (fp32 - bf16).abs().max().item() < 0.1
    assert len(list((w2s_cache / "features").glob("*.pt"))) >= 2


@pytest.mark.parametrize("dtype, expected", [("auto", torch.float32), ("bfloat16", torch.bfloat16)])
def test_a_probe_job_extracts_in_its_compute_dtype(monkeypatch, dtype, expected):
    seen = {}

    def fake(spec, texts, **kwargs):
        seen.update(kwargs)
        return torch.zeros(len(texts), 4)

    monkeypatch.setattr(setup, "cached_features", fake)
    job = {
        "model": model_defaults("tiny-random-bert"),
        "train": {"max_length": 16, "minibatch_size": 8, "dtype": dtype},
        "data": {},
    }
    table, row = setup.probe_features(job, ["a", "b"], torch.device("cpu"))
    assert seen["dtype"] == expected and seen["batch_size"] == 32 and row == {"a": 0, "b": 1}
