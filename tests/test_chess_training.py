"""Choice scoring by a causal LM (`w2s_core.training.choice`) and chess finetuning on the char-level tiny GPT-2.

- ChoiceLM's logits are the summed log-probabilities of each candidate's tokens after its context,
  equal to a brute-force computation over the full vocabulary logits, for ragged candidate sets
  (missing candidates hold PAD_LOGIT) and single- and multi-token candidates alike.
- Contexts are cut from the left, keeping the BOS, so context and longest candidate fit max_length.
- The built-in tiny GPT-2, saved as a bare GPT2Model, loads as a causal LM with its head tied.
- `tiny = {tokenizer = "chars"}`: a case-keeping character tokenizer (FEN and UCI survive), a new
  cache key only for "chars", an InputError for anything else.
- `build_choice` on a handful of positions: its Setup trains like any classifier and the loss falls.
"""

from __future__ import annotations

import random

import chess
import pytest
import torch

from w2s_core.data import Split
from w2s_core.errors import InputError
from w2s_core.spec.models import tiny_settings
from w2s_core.spec.registry import model_defaults
from w2s_core.training import choice
from w2s_core.training.losses import PAD_LOGIT
from w2s_core.training.models import load_backbone, load_tokenizer

CHARS = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "seed": 0, "tokenizer": "chars"}


pytestmark = pytest.mark.usefixtures("w2s_cache")  # one w2s cache for the module (conftest)


def gpt2_spec(**tiny) -> dict:
    spec = {**model_defaults("tiny-random-gpt2"), "name": "t", "path": "tiny-random-gpt2"}
    return {**spec, "tiny": {**spec["tiny"], **tiny}}


def brute_force(lm, items) -> list[list[float]]:
    """Summed log p(candidate tokens | context), each candidate run alone through the full LM head."""
    out = []
    for context, cands in items:
        row = []
        for cand in cands:
            ids = torch.tensor([context + cand])
            logp = torch.log_softmax(lm(input_ids=ids).logits[0].double(), dim=-1)
            row.append(sum(logp[len(context) - 1 + j, t].item() for j, t in enumerate(cand)))
        out.append(row)
    return out


def test_choice_logits_equal_brute_force_summed_log_probs_with_ragged_sets():
    spec = gpt2_spec()
    lm = choice.load_causal_lm(spec, torch.float32).eval()
    tok = load_tokenizer(spec)
    texts = ["the movie was great", "a dull and boring film", ""]
    choices_ = [(" good", " bad"), (" great fun", " bad", " the dull plot film"), (" fun",)]
    items = choice.encode_choices(tok, texts, choices_, 64)
    assert items[2][0] == [tok.bos_token_id]  # an empty context reads its BOS
    with torch.no_grad():
        logits = choice.ChoiceLM(lm, spec)(*choice.collate_choices(items, tok.pad_token_id))
    assert logits.shape == (3, 3) and logits.dtype == torch.float32
    expected = brute_force(lm, items)
    for n, row in enumerate(expected):
        assert logits[n, : len(row)].tolist() == pytest.approx(row, abs=1e-5)
        assert (logits[n, len(row) :] == PAD_LOGIT).all()
    assert logits[0, 0] != logits[0, 1]  # different words, different scores


def test_tiny_gpt2_loads_as_a_causal_lm_with_its_head_tied():
    spec = gpt2_spec()
    lm = choice.load_causal_lm(spec, torch.float32)
    assert type(lm).__name__ == "GPT2LMHeadModel" and lm.config.use_cache is False
    body = load_backbone(spec, torch.float32)
    assert torch.equal(lm.get_output_embeddings().weight, body.wte.weight)
    assert lm.get_output_embeddings().weight is lm.transformer.wte.weight


def test_contexts_are_cut_on_the_left_keeping_bos_to_fit_the_longest_candidate():
    spec = gpt2_spec(tokenizer="chars")
    tok = load_tokenizer(spec)
    cut: list[int] = []
    items = choice.encode_choices(tok, ["abcdefghij", "xy"], [(" e2e4", " a"), (" a",)], 8, cut=cut)
    (context, cands), (short, _) = items
    assert tok.convert_ids_to_tokens(context) == ["[BOS]", "i", "j"]  # 3 + 5 = max_length 8
    assert tok.convert_ids_to_tokens(cands[0]) == [" ", "e", "2", "e", "4"]
    assert tok.convert_ids_to_tokens(short) == ["[BOS]", "x", "y"] and cut == [0]
    with pytest.raises(InputError, match="max_length"):
        choice.encode_choices(tok, ["abc"], [(" e2e4",)], 5)


def test_char_tokenizer_keeps_case_and_only_chars_changes_the_cache_key():
    tok = load_tokenizer(gpt2_spec(tokenizer="chars"))
    fen = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1"
    ids = tok(fen)["input_ids"]
    assert tok.unk_token_id not in ids and "".join(tok.convert_ids_to_tokens(ids[1:])) == fen
    words = tiny_settings("tiny-random-gpt2", {"seed": 0})
    assert "tokenizer" not in words and words == tiny_settings("tiny-random-gpt2", {"tokenizer": "words"})
    chars = tiny_settings("tiny-random-gpt2", {"tokenizer": "chars"})
    assert chars["tokenizer"] == "chars" and chars["vocab_sha256"] != words["vocab_sha256"]
    with pytest.raises(InputError, match="tiny.tokenizer"):
        tiny_settings("tiny-random-gpt2", {"tokenizer": "bytes"})


def positions(n: int, seed: int = 0) -> tuple[list[str], list[int], list[tuple[str, ...]]]:
    """n positions from seeded random play: (prompts, the index of a fixed-rule move, legal moves sorted)."""
    rng = random.Random(seed)
    texts, labels, choices_ = [], [], []
    while len(texts) < n:
        board = chess.Board()
        for _ in range(rng.randrange(2, 12)):
            board.push(rng.choice(list(board.legal_moves)))
        moves = tuple(sorted(m.uci() for m in board.legal_moves))
        if len(moves) < 2:
            continue
        texts.append(f"FEN: {board.fen()}\nMove:")
        labels.append(len(moves) // 2)
        choices_.append(moves)
    return texts, labels, choices_


def choice_split(texts, labels, choices_) -> Split:
    return Split(texts, labels, list(range(len(texts))), choices=list(choices_), n_classes=0)


def test_chess_finetune_on_a_char_tokenizer_gpt2_lowers_its_loss():
    torch.manual_seed(0)
    data = positions(6)
    split = choice_split(*data)
    job = {
        "model": gpt2_spec(tokenizer="chars"),
        "train": {**model_defaults("tiny-random-gpt2"), "max_length": 128, "lora": False, "mode": "finetune"},
        "train_split": "A",
        "predict_split": "B",
        "data": {"kind": "chess"},
    }
    setup = choice.build_choice(job, {"A": split, "B": split, "test": split}, torch.device("cpu"))
    assert set(setup.inputs) == {"train", "test", "predict"} and not setup.autocast
    items = setup.inputs["train"]
    labels = torch.tensor(data[1])
    widths = [len(c) for c in data[2]]
    opt = torch.optim.Adam(setup.module.parameters(), lr=3e-3)
    setup.module.train()
    losses = []
    for _ in range(10):
        logits = setup.module(*setup.batch(items))
        assert logits.shape == (6, max(widths))
        assert all((logits[n, w:] == PAD_LOGIT).all() for n, w in enumerate(widths))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
