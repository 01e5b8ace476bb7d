"""The built-in tiny models (`tiny-random-gpt2`, `tiny-random-bert`): random-init weights and a word-level
(default) or character-level (`tiny = {tokenizer = "chars"}`, for chess positions and moves) tokenizer.

They are written once into the w2s cache with `save_pretrained` and then loaded like any other
model through `from_pretrained(dir)`, so tests and the smoke recipe exercise the real loading path.
Their settings and cache key come from the torch-free `w2s_core.spec.models.tiny_settings`.
`word_level_tokenizer` also builds the local tokenizers of the tests' tiny Qwen2/Llama/Pythia models.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from w2s_core.errors import W2SError
from w2s_core.paths import cache_dir
from w2s_core.spec.models import TINY_POSITIONS, sha256_text, tiny_settings, tiny_vocab


def word_level_tokenizer(vocab: dict[str, int], template: str = "$A", **roles: str):
    """A lower-casing, whitespace-splitting word-level tokenizer over `vocab` (which must hold "[UNK]").

    `template` wraps every text ("[BOS] $A", "[CLS] $A [SEP]"; its special tokens must be in
    `vocab`). `roles` are Hugging Face's special-token roles (`pad_token="[PAD]"`, `eos_token=...`):
    a role left out is one the tokenizer lacks, e.g. no pad and no eos, as Qwen-1's tokenizer.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = [word for word in template.split() if word != "$A"]
    if specials:
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(s, vocab[s]) for s in specials]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **roles, model_max_length=TINY_POSITIONS, padding_side="right")


def char_level_tokenizer(vocab: dict[str, int], template: str = "$A", **roles: str):
    """One token per character (unknown characters are "[UNK]"), case and whitespace kept.

    Nothing is lower-cased or stripped: FEN is case-sensitive ("K" is White's king, "k" Black's),
    and a continuation such as " e2e4", tokenised on its own, must keep its leading space.
    `template` and `roles` as in `word_level_tokenizer`.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    # [\s\S]: any one character, newlines included (the regex engine knows no DOTALL flag)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    specials = [word for word in template.split() if word != "$A"]
    if specials:
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(s, vocab[s]) for s in specials]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **roles, model_max_length=TINY_POSITIONS, padding_side="right")


def _tiny_tokenizer(vocab: dict[str, int], causal: bool, tokenizer: str = "words"):
    # gpt2-style: a BOS in front so even an empty text has a last token; bert-style: [CLS] .. [SEP].
    build = char_level_tokenizer if tokenizer == "chars" else word_level_tokenizer
    return build(
        vocab,
        "[BOS] $A" if causal else "[CLS] $A [SEP]",
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def _write_tiny(settings: dict, dest: Path) -> None:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    tokenizer = settings.get("tokenizer", "words")
    vocab = tiny_vocab(tokenizer)
    causal = settings["name"] == "tiny-random-gpt2"
    h, n_layers, n_heads = settings["hidden_size"], settings["num_layers"], settings["num_heads"]
    if causal:
        config = GPT2Config(
            vocab_size=len(vocab),
            n_embd=h,
            n_layer=n_layers,
            n_head=n_heads,
            n_positions=settings["positions"],
            bos_token_id=vocab["[BOS]"],
            eos_token_id=vocab["[EOS]"],
            pad_token_id=vocab["[PAD]"],
        )
    else:
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=h,
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            intermediate_size=4 * h,
            max_position_embeddings=settings["positions"],
            pad_token_id=vocab["[PAD]"],
        )
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(settings["seed"])
        model = GPT2Model(config) if causal else BertModel(config)
    model.save_pretrained(dest)
    _tiny_tokenizer(vocab, causal, tokenizer).save_pretrained(dest)


def ensure_tiny(name: str, tiny: dict | None) -> Path:
    """Generate a built-in random-init model once; concurrent callers never see a half-written dir."""
    settings = tiny_settings(name, tiny)
    root = cache_dir() / "models"
    target = root / f"{name}-{sha256_text(json.dumps(settings, sort_keys=True))[:16]}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        _write_tiny(settings, tmp)
        os.rename(tmp, target)  # atomic; fails if another process got there first, which is fine
    except OSError as e:
        if not target.is_dir():
            raise W2SError(
                f"Could not write the built-in model '{name}' under {root}: {e}. "
                "Check that the w2s cache ($W2S_CACHE) is writable and has free space."
            ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
