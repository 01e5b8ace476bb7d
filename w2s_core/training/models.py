"""Models as binary classifiers: loading, pooling, built-in tiny models and cached probe features.

Every model, built-in or not, goes through `from_pretrained(dir)`, so the tiny models exercise the
same code path as real ones. Sequences are always right-padded; pooling relies on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.errors import InputError, W2SError
from w2s_core.paths import cache_dir, locked
from w2s_core.spec.models import (SPECIAL_TOKENS, TINY_POSITIONS, local_model_dir, looks_local, model_fingerprint,
                           sha256_text, tiny_settings, tiny_vocab)
from w2s_core.spec.registry import BUILTIN_TINY

POOLING = {"causal": "last", "encoder": "mean"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --- built-in tiny models -------------------------------------------------------------------


def _tiny_tokenizer(vocab: dict[str, int], causal: bool):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # gpt2-style: a BOS in front so even an empty text has a last token; bert-style: [CLS] .. [SEP].
    template = "[BOS] $A" if causal else "[CLS] $A [SEP]"
    specials = ["[BOS]"] if causal else ["[CLS]", "[SEP]"]
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[(s, vocab[s]) for s in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        bos_token="[BOS]", eos_token="[EOS]", model_max_length=TINY_POSITIONS, padding_side="right",
    )


def _write_tiny(settings: dict, dest: Path) -> None:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    vocab = tiny_vocab()
    causal = settings["name"] == "tiny-random-gpt2"
    h, n_layers, n_heads = settings["hidden_size"], settings["num_layers"], settings["num_heads"]
    if causal:
        config = GPT2Config(vocab_size=len(vocab), n_embd=h, n_layer=n_layers, n_head=n_heads,
                            n_positions=settings["positions"], bos_token_id=vocab["[BOS]"],
                            eos_token_id=vocab["[EOS]"], pad_token_id=vocab["[PAD]"])
    else:
        config = BertConfig(vocab_size=len(vocab), hidden_size=h, num_hidden_layers=n_layers,
                            num_attention_heads=n_heads, intermediate_size=4 * h,
                            max_position_embeddings=settings["positions"], pad_token_id=vocab["[PAD]"])
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(settings["seed"])
        model = GPT2Model(config) if causal else BertModel(config)
    model.save_pretrained(dest)
    _tiny_tokenizer(vocab, causal).save_pretrained(dest)


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
            raise W2SError(f"Could not write the built-in model '{name}' under {root}: {e}. "
                           "Check that the w2s cache ($W2S_CACHE) is writable and has free space.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- resolving and fingerprinting -----------------------------------------------------------


def resolve_path(spec: dict) -> str:
    """A path `from_pretrained` accepts: a generated dir for built-ins, a checked local dir, or a hub id."""
    path = spec["path"]
    if path in BUILTIN_TINY:
        return str(ensure_tiny(path, spec.get("tiny")))
    if path in PACKAGED_MODELS:
        return str(PACKAGED_MODELS[path][0]())
    if not looks_local(path):
        return path
    return local_model_dir(spec)


# --- loading --------------------------------------------------------------------------------


def _load_error(spec: dict, path: str, exc: Exception) -> W2SError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    hints = ["If this machine is offline, the model must already be in the Hugging Face cache; "
             "otherwise set the model's `path` to a local directory holding config.json and weights."]
    if "trust_remote_code" in text or "custom code" in text:
        hints.insert(0, "This model ships its own code: if you trust it, set `trust_remote_code = true` "
                        "for this model in the recipe.")
    rev = f" at revision {spec['revision']}" if spec.get("revision") else ""
    return W2SError(f"Model '{spec.get('name', path)}' could not load from '{path}'{rev}: "
                    f"{type(exc).__name__}: {first} {' '.join(hints)}")


def _remote_kwargs(spec: dict) -> dict:
    return {"revision": spec.get("revision"), "trust_remote_code": bool(spec.get("trust_remote_code", False))}


def _load_config(spec: dict):
    from transformers import AutoConfig

    path = resolve_path(spec)
    try:
        return AutoConfig.from_pretrained(path, **_remote_kwargs(spec))
    except Exception as e:
        raise _load_error(spec, path, e) from e


def detect_arch(config) -> str:
    """Decoder-only LMs are "causal", the rest "encoder" (BERT-likes also have causal-LM heads)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    if getattr(config, "is_decoder", False) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "causal"
    if any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures):
        return "encoder"
    kind = config.model_type
    causal = kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    return "causal" if causal else "encoder"


def model_arch(spec: dict, config=None) -> str:
    """The spec's `arch`, else detected from the config (loaded if not given)."""
    return spec.get("arch") or detect_arch(config if config is not None else _load_config(spec))


def _load_backbone(spec: dict, dtype: torch.dtype):
    """AutoModel (no LM head, no pooler) with dropout off and no KV cache, as the reference trains."""
    from transformers import AutoModel

    config = _load_config(spec)
    for key, value in config.to_dict().items():
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float):
            setattr(config, key, 0.0)
    if hasattr(config, "use_cache"):
        config.use_cache = False
    path = resolve_path(spec)
    try:
        backbone = AutoModel.from_pretrained(path, config=config, dtype=dtype, **_remote_kwargs(spec))
    except Exception as e:
        raise _load_error(spec, path, e) from e
    if isinstance(getattr(backbone, "pooler", None), nn.Module):
        # BERT-style poolers go unused here: idle parameters break DDP and would take LoRA adapters.
        backbone.pooler = None
    return backbone


def load_tokenizer(spec: dict):
    """AutoTokenizer with right padding and a pad token (eos for gpt2-style tokenizers lacking one)."""
    from transformers import AutoTokenizer

    path = resolve_path(spec)
    try:
        tok = AutoTokenizer.from_pretrained(path, **_remote_kwargs(spec))
    except Exception as e:
        raise _load_error(spec, path, e) from e
    tok.padding_side = "right"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise W2SError(f"Model '{spec.get('name', path)}': its tokenizer has neither a pad nor an eos token, "
                           "so batches cannot be padded. Use a tokenizer that defines one of them.")
        tok.pad_token = tok.eos_token
    return tok


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[N,T,H] -> [N,H] float32: "last" non-pad token (right padding) or attention-mask "mean"."""
    if pooling == "last":
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class BinaryClassifier(nn.Module):
    """Backbone + zero-initialised linear head, so training starts from 50/50 predictions."""

    def __init__(self, backbone: nn.Module, hidden_size: int, pooling: str):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        # float32 and bias-free like the reference head; pooled states are cast up to meet it.
        self.head = nn.Linear(hidden_size, 2, bias=False)
        nn.init.zeros_(self.head.weight)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask))


def load_classifier(spec: dict, *, dtype: torch.dtype, lora: dict | None, grad_checkpointing: bool):
    """(BinaryClassifier, tokenizer). With `lora`, only the adapters and the head are trainable."""
    backbone = _load_backbone(spec, dtype)
    config = backbone.config
    if grad_checkpointing and backbone.supports_gradient_checkpointing:
        # transformers 5 renamed the method; both take the checkpoint kwargs first.
        enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        backbone = get_peft_model(backbone, LoraConfig(
            r=lora.get("r", 8), lora_alpha=lora.get("alpha", 16), lora_dropout=lora.get("dropout", 0.0),
            target_modules=lora.get("target_modules") or "all-linear",
        ))
    model = BinaryClassifier(backbone, config.hidden_size, POOLING[model_arch(spec, config)])
    return model, load_tokenizer(spec)


def pick_dtype(requested: str, device: torch.device | str) -> torch.dtype:
    """Resolve "auto" to bfloat16 on a CUDA device that supports it, else float32; honour explicit names."""
    if requested == "auto":
        cuda = torch.device(device).type == "cuda"
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if requested not in DTYPES:
        raise InputError(f"Unknown dtype {requested!r}; expected one of auto, {', '.join(DTYPES)}.")
    return DTYPES[requested]


# --- tokenisation ---------------------------------------------------------------------------


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to max_length (and to the model's own limit, when it has one)."""
    limit = max_length
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < 1_000_000:  # HF uses a huge sentinel for "no limit"
        limit = min(limit, model_max)
    ids = tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
    # An empty text would leave nothing to pool (and an all-masked attention row): give it one token.
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return [seq if seq else [fallback] for seq in ids]


def collate(batch_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence in the batch: (input_ids, attention_mask), both int64."""
    width = max((len(seq) for seq in batch_ids), default=0)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, seq in enumerate(batch_ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


# --- probe features -------------------------------------------------------------------------


def extract_features(spec: dict, texts: Sequence[str], *, max_length: int, batch_size: int,
                     device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frozen-backbone pooled features [N,H] float32, in input order (batched by length for speed)."""
    device = torch.device(device)
    backbone = _load_backbone(spec, dtype).to(device).eval().requires_grad_(False)
    pooling = POOLING[model_arch(spec, backbone.config)]
    tok = load_tokenizer(spec)
    ids = encode(tok, texts, max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)  # longest first: OOM early
    out = torch.empty((len(ids), backbone.config.hidden_size), dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start: start + batch_size]
            input_ids, mask = collate([ids[i] for i in rows], tok.pad_token_id)
            input_ids, mask = input_ids.to(device), mask.to(device)
            hidden = backbone(input_ids=input_ids, attention_mask=mask)[0]
            out[rows] = pool(hidden, mask, pooling).cpu()
    return out


def _textssha256_text(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        data = text.encode()
        h.update(len(data).to_bytes(8, "little"))  # length prefix: ["ab","c"] != ["a","bc"]
        h.update(data)
    return h.hexdigest()


def cached_features(spec: dict, texts: Sequence[str], *, max_length: int, batch_size: int,
                    device: torch.device | str) -> torch.Tensor:
    """extract_features, memoised on disk so probe jobs sharing a model and texts run it once."""
    pooling = POOLING[model_arch(spec)]
    key = sha256_text(json.dumps([model_fingerprint(spec), pooling, max_length, _textssha256_text(texts)]))
    path = cache_dir() / "features" / f"{key}.pt"
    with locked(path.with_suffix(".lock")):  # a parallel job wanting the same features waits, then loads
        if path.is_file():
            return torch.load(path, weights_only=True)
        features = extract_features(spec, texts, max_length=max_length, batch_size=batch_size, device=device)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(features, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return features
