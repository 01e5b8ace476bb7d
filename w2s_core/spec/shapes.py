"""A model's architecture figures without loading it: parameter counts and the sizes activations scale with.

The memory plan (memory.py) needs, for each model a job loads, its hidden size, layers, heads, MLP
width, vocabulary and whether its MLP is gated; from them it counts parameters exactly (GPT2Model
gpt2-xl: 1,557,611,200) and sizes activations. The figures come from, in order:

1. a local model folder's config.json (`path = "/…"`);
2. the Hugging Face cache's config.json of a hub id (`data.cache.hub_cache`, where `w2s prefetch` puts
   it; the recipe's pinned `revision`, else `main`): never a download;
3. the registry's figures (`registry.MODEL_SHAPES`, by name);
4. a built-in tiny model's settings.

None when nothing is known (the plan then says so). Families differ in spelling (GPT-2's `n_embd`,
Llama's `hidden_size`), in biases and norms, in gated MLPs (SwiGLU: three matrices of
`intermediate` width) and in how Qwen (v1) counts its MLP (`intermediate_size` is twice each branch).
An unknown family with the usual keys is counted as a plain pre-LN decoder (source says "generic").
No torch: the CLI and the supervisor read this.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.data.cache import hub_cache
from w2s_core.spec.models import TINY_POSITIONS, looks_local, tiny_settings, tiny_vocab
from w2s_core.spec.registry import BUILTIN_TINY, MODEL_SHAPES

GATED = {"llama", "mistral", "qwen", "qwen2", "qwen3", "gemma", "gemma2", "mixtral", "phi3", "olmo", "olmo2"}
ENCODERS = {"bert", "roberta", "mpnet", "distilbert", "electra", "xlm-roberta", "deberta", "deberta-v2"}
# every bias (attention, MLP, LayerNorm) vs none but q/k/v's (qwen, qwen2) vs none (llama, mistral)
ALL_BIASES = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", *ENCODERS}
QKV_BIAS_ONLY = {"qwen", "qwen2"}
# the layer class FSDP wraps, one unit per layer (transformers' own `_no_split_modules`)
BLOCKS = {
    "gpt2": "GPT2Block",
    "gpt_neox": "GPTNeoXLayer",
    "llama": "LlamaDecoderLayer",
    "mistral": "MistralDecoderLayer",
    "qwen2": "Qwen2DecoderLayer",
    "qwen": "QWenBlock",
    "bert": "BertLayer",
    "roberta": "RobertaLayer",
    "mpnet": "MPNetLayer",
}
UNTIED_BY_DEFAULT = {"gpt_neox", "qwen", "qwen2", "llama", "mistral"}


@dataclass(frozen=True)
class Shape:
    """One architecture's sizes. `intermediate` is each MLP branch's width (gated: gate and up)."""

    family: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    kv_heads: int = 0  # 0: as many as `heads`
    positions: int = 0  # learned position embeddings (0: rotary)
    type_vocab: int = 0  # BERT's token-type embeddings
    tied: bool = True  # the LM head shares the input embedding
    source: str = "registry"

    @property
    def gated(self) -> bool:
        return self.family in GATED

    @property
    def encoder(self) -> bool:
        return self.family in ENCODERS

    @property
    def kv_dim(self) -> int:
        return self.hidden * (self.kv_heads or self.heads) // self.heads

    @property
    def block(self) -> str | None:
        """The layer class FSDP wraps (None: unknown here; the model's `_no_split_modules` says)."""
        return BLOCKS.get(self.family)

    def layer_params(self) -> int:
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        attention = 2 * h * h + 2 * h * kv
        mlp = (3 if self.gated else 2) * h * i
        if self.family in ALL_BIASES:
            return attention + mlp + (2 * h + 2 * kv) + (i + h) + 4 * h  # biases, two LayerNorms
        qkv_bias = (h + 2 * kv) if self.family in QKV_BIAS_ONLY else 0
        return attention + mlp + qkv_bias + 2 * h  # two RMSNorms

    def embedding_params(self) -> int:
        extra = 2 * self.hidden if self.encoder else 0  # the embeddings' LayerNorm
        return (self.vocab + self.positions + self.type_vocab) * self.hidden + extra

    def body_params(self) -> int:
        """What `AutoModel` loads (no LM head): embeddings, layers, final norm."""
        final_norm = 0 if self.encoder else (2 if self.family in ALL_BIASES else 1) * self.hidden
        return self.embedding_params() + self.layers * self.layer_params() + final_norm

    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    @property
    def params(self) -> int:
        """The model's size as published: body and LM head."""
        return self.body_params() + self.lm_head_params()

    def largest_tensor(self) -> int:
        """Elements of the largest single weight (what Adafactor's per-tensor float32 copies scale with)."""
        h = self.hidden
        return max(self.vocab * h, h * self.intermediate, h * (h + 2 * self.kv_dim))


def from_config(config: dict, source: str) -> Shape | None:
    """The shape a config.json describes, or None when it lacks the sizes."""
    family = str(config.get("model_type", ""))
    get = config.get
    if family == "gpt2" or "n_embd" in config:
        hidden, layers, heads = get("n_embd"), get("n_layer"), get("n_head")
        intermediate, positions = get("n_inner") or 4 * (hidden or 0), get("n_positions", 1024)
    elif family == "distilbert":
        hidden, layers, heads, intermediate = get("dim"), get("n_layers"), get("n_heads"), get("hidden_dim")
        positions = get("max_position_embeddings", 512)
    else:
        hidden, layers, heads = get("hidden_size"), get("num_hidden_layers"), get("num_attention_heads")
        intermediate = get("intermediate_size") or 4 * (hidden or 0)
        if family == "qwen":
            intermediate //= 2  # Qwen (v1) halves it for each of its two branches
        positions = get("max_position_embeddings", 512) if family in ENCODERS else 0
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, intermediate, get("vocab_size"))):
        return None
    known = family in BLOCKS or family in GATED or family in ALL_BIASES
    return Shape(
        family=family or "generic",
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab=get("vocab_size"),
        kv_heads=get("num_key_value_heads") or 0,
        positions=positions if family != "gpt_neox" else 0,
        type_vocab=get("type_vocab_size", 0) if family in ENCODERS else 0,
        tied=bool(get("tie_word_embeddings", family not in UNTIED_BY_DEFAULT)),
        source=source if known else f"{source} (generic formula)",
    )


def from_figures(figures: dict, source: str = "registry") -> Shape:
    """A shape from the registry's figures (MODEL_SHAPES): the family's defaults fill the rest."""
    family = figures["family"]
    fill = {
        "intermediate": 4 * figures["hidden"],
        "tied": family not in UNTIED_BY_DEFAULT,
        "positions": 0,
        "type_vocab": 0,
        "kv_heads": 0,
    }
    return Shape(**{**fill, **figures, "source": source})


def cached_config(repo: str, revision: str | None = None) -> Path | None:
    """The config.json of `repo` at `revision` (a commit, branch or tag; default main) in the HF cache."""
    folder = hub_cache() / f"models--{repo.replace('/', '--')}"
    ref = revision or "main"
    commit = ref
    ref_file = folder / "refs" / ref
    if ref_file.is_file():
        commit = ref_file.read_text().strip()
    path = folder / "snapshots" / commit / "config.json"
    return path if path.is_file() else None


def _read(path: Path, source: str) -> Shape | None:
    try:
        return from_config(json.loads(path.read_text()), source)
    except (OSError, ValueError, TypeError):
        return None


def tiny_shape(name: str, tiny: dict | None) -> Shape:
    """A built-in tiny model's shape, as training/tiny.py builds it (GPT2Model or BertModel, FFN 4h)."""
    s = tiny_settings(name, tiny)
    vocab = len(tiny_vocab(s.get("tokenizer", "words")))
    family, types = ("gpt2", 0) if name == "tiny-random-gpt2" else ("bert", 2)
    return Shape(
        family, s["hidden_size"], s["num_layers"], s["num_heads"], 4 * s["hidden_size"], vocab,
        positions=TINY_POSITIONS, type_vocab=types, source="tiny settings",
    )  # fmt: skip


def model_shape(model: dict) -> Shape | None:
    """The shape of the model a job spec names (`path`, `revision`, `tiny`), or None when unknown."""
    path, name = model.get("path") or model.get("name"), model.get("name")
    if path in BUILTIN_TINY:
        return tiny_shape(path, model.get("tiny"))
    if path not in PACKAGED_MODELS:
        if looks_local(path):
            config = Path(os.path.expanduser(path)) / "config.json"
            return _read(config, f"config.json in {path}") if config.is_file() else None
        found = cached_config(path, model.get("revision"))
        shape = _read(found, "config.json in the Hugging Face cache") if found else None
        if shape is not None:
            return shape
    for key in (path, name):
        if key in MODEL_SHAPES:
            return from_figures(MODEL_SHAPES[key])
    return None
