"""Models as classifiers: loading a backbone and its tokenizer, pooling, the linear head, dtypes.

The head has one output per class (2 for binary tasks, K for K-class ones) or a single one, a
scalar reward that `PairScores` applies to both replies of a pairwise comparison.

Every model, built-in or not, goes through `from_pretrained(dir)`, so the tiny models
(`w2s_core.training.tiny`) exercise the same code path as real ones. Sequences are always
right-padded; pooling relies on it. Probe features (a frozen backbone's pooled states, cached on
disk) live in `w2s_core.training.features`.

Speed (issue 11): backbones load with PyTorch's fused attention (`attn_implementation="sdpa"`)
where their class supports it, else "eager" (`attention_choice`); a minibatch without padding
reaches the backbone with no attention mask, so Hugging Face's mask code need not read the mask's
values on the host (a device sync) to find out; and `to_device` copies inputs to a GPU from pinned
memory without waiting for the queued kernels. None of these changes a prediction beyond float
tolerance (`tests/test_trainer_speed.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.errors import InputError, W2SError
from w2s_core.spec.models import local_model_dir, looks_local
from w2s_core.spec.registry import BUILTIN_TINY
from w2s_core.training.tiny import ensure_tiny

POOLING = {"causal": "last", "encoder": "mean"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    hints = [
        "If this machine is offline, the model must already be in the Hugging Face cache; "
        "otherwise set the model's `path` to a local directory holding config.json and weights."
    ]
    if "trust_remote_code" in text or "custom code" in text:
        hints.insert(
            0,
            "This model ships its own code: if you trust it, set `trust_remote_code = true` "
            "for this model in the recipe.",
        )
    rev = f" at revision {spec['revision']}" if spec.get("revision") else ""
    return W2SError(
        f"Model '{spec.get('name', path)}' could not load from '{path}'{rev}: "
        f"{type(exc).__name__}: {first} {' '.join(hints)}"
    )


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


def has_auto_model(config) -> bool:
    """Whether `AutoModel` can build this config, by transformers' own test: a class it knows, or the repo's `auto_map`.

    Qwen-1-style repos ship their own code and map only AutoConfig and AutoModelForCausalLM.
    """
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    return "AutoModel" in (getattr(config, "auto_map", None) or {}) or type(config) in MODEL_MAPPING


def causal_lm_body(spec: dict, lm) -> nn.Module:
    """The transformer under a causal LM's head, as the reference takes `lm.transformer`.

    `base_model` is Hugging Face's own accessor (`getattr(lm, lm.base_model_prefix)`): every
    PreTrainedModel, remote code included, names its body by `base_model_prefix` so checkpoints
    load with or without the prefix ("transformer" for GPT-2 and Qwen-1, "model" for Llama/Qwen2,
    "gpt_neox" for Pythia). `get_decoder()` is a best-effort lookup that older transformers and
    remote code do not all define. `base_model` returns the LM itself when the prefix names no
    submodule; its outputs would be vocabulary logits, so that is an error, not a fallback.
    """
    body = lm.base_model
    if body is lm:
        raise W2SError(
            f"Model '{spec.get('name', spec['path'])}': its causal-LM class {type(lm).__name__} has no "
            f"`{lm.base_model_prefix}` submodule (its `base_model_prefix`), so w2s cannot find the "
            "transformer under the LM head. Use a checkpoint whose AutoModel class loads."
        )
    return body


def attention_choice(auto, config) -> str | None:
    """The attention implementation to load `config` with through the auto class `auto`.

    "sdpa" (`torch.nn.functional.scaled_dot_product_attention`: flash or memory-efficient kernels on
    a GPU, no [T, T] score matrix kept) when the class `auto` builds supports it, "eager" (the plain
    matmul-softmax-matmul) when it does not, None when the class is not known before loading (remote
    code): then transformers picks, which is the same rule. transformers >= 4.36 already prefers SDPA
    by default; saying so keeps the choice out of version defaults. Both compute the same function
    (equal predictions within float tolerance on the tiny models, `tests/test_trainer_speed.py`).
    """
    mapping = getattr(auto, "_model_mapping", None)
    try:
        cls = mapping[type(config)] if mapping is not None else None
    except (KeyError, ValueError):
        cls = None
    if cls is None:
        return None
    return "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"


def placement(device: torch.device | str | None) -> dict:
    """`from_pretrained` kwargs that load the weights straight onto `device` when it is a GPU, instead of
    into host memory first (about 30 GB of host RAM per process for a 7B model in float32, times the
    processes of a multi-GPU job). Not under FSDP: there accelerate shards the host copy as it wraps the
    model, and each process holding a whole replica on its GPU is what FSDP exists to avoid."""
    if device is None or torch.device(device).type != "cuda":
        return {}
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true"):
        return {}
    return {"device_map": {"": torch.device(device)}}


def load_backbone(
    spec: dict,
    dtype: torch.dtype,
    dropout: bool = False,
    attention: str | None = "auto",
    device: torch.device | str | None = None,
):
    """The model's transformer (no LM head, no pooler) with no KV cache and, unless `dropout`, dropout off.

    Loaded with AutoModel where it maps the config (so existing models load exactly as before),
    else with AutoModelForCausalLM and its body taken (`causal_lm_body`). `attention`: "auto" picks
    by `attention_choice`; "sdpa" or "eager" force one (tests compare them). Dropout is zeroed in the
    config rather than by eval mode, so the model can train in training mode (which gradient
    checkpointing needs) and still compute the same function in every pass, as the reference trains.
    On a GPU `device` the weights load straight onto it (`placement`).
    """
    from transformers import AutoModel, AutoModelForCausalLM

    config = _load_config(spec)
    for key, value in config.to_dict().items():
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float) and not dropout:
            setattr(config, key, 0.0)
    if hasattr(config, "use_cache"):
        config.use_cache = False
    path = resolve_path(spec)
    auto = AutoModel if has_auto_model(config) else AutoModelForCausalLM
    attn = attention_choice(auto, config) if attention == "auto" else attention
    kwargs = {"attn_implementation": attn} if attn else {}
    try:
        backbone = auto.from_pretrained(
            path, config=config, dtype=dtype, **kwargs, **placement(device), **_remote_kwargs(spec)
        )
    except Exception as e:
        raise _load_error(spec, path, e) from e
    if auto is AutoModelForCausalLM:
        backbone = causal_lm_body(spec, backbone)
    if isinstance(getattr(backbone, "pooler", None), nn.Module):
        # BERT-style poolers go unused here: idle parameters break DDP and would take LoRA adapters.
        backbone.pooler = None
    return backbone


# Qwen-1's tokenizer has neither a pad nor an eos token. Pad positions are masked out of attention
# and pooling, so any id in the vocabulary is harmless there; 0 always is.
NO_PAD_FALLBACK_ID = 0


def load_tokenizer(spec: dict):
    """AutoTokenizer with right padding and a pad token: its own, else its eos (gpt2-style), else id 0.

    The pad id never decides a result: `collate` masks pad positions and `pool` reads the
    attention mask, never `input_ids != pad_id` (the reference pools the last id that is not 0,
    which skips a real trailing "!", id 0 in the GPT-2 and Qwen vocabularies).
    """
    from transformers import AutoTokenizer

    path = resolve_path(spec)
    try:
        tok = AutoTokenizer.from_pretrained(path, **_remote_kwargs(spec))
    except Exception as e:
        raise _load_error(spec, path, e) from e
    tok.padding_side = "right"
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    elif tok.pad_token is None:
        refused = None
        try:
            tok.pad_token_id = NO_PAD_FALLBACK_ID
        except Exception as e:  # a remote-code tokenizer may refuse; reported just below
            refused = e
        if tok.pad_token_id is None:
            raise W2SError(
                f"Model '{spec.get('name', path)}': its tokenizer ({type(tok).__name__}) has neither a pad "
                f"nor an eos token and did not accept id {NO_PAD_FALLBACK_ID} as its pad token, so batches "
                "cannot be padded. Use a tokenizer that defines a pad or an eos token."
            ) from refused
    return tok


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[N,T,H] -> [N,H] float32: "last" real token (right padding) or attention-mask "mean".

    Both read only the attention mask, so a real token whose id equals the pad id still counts.
    No mask means no padding: every position is real (the same figures as an all-ones mask).
    """
    if attention_mask is None:
        if pooling == "last":
            return hidden[:, -1].float()
        return hidden.float().sum(dim=1) / hidden.shape[1]
    if pooling == "last":
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class BinaryClassifier(nn.Module):
    """Backbone + zero-initialised linear head, so training starts from uniform predictions.

    `n_outputs` logits per input: 2 (the default, and the name's origin) for binary tasks, K for a
    K-class task, 1 for a scalar reward (`PairScores`). The parameter names (`backbone.*`,
    `head.weight`) do not depend on it.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int, pooling: str, n_outputs: int = 2):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        # FSDP wraps one unit per layer class the wrapped model names (accelerate reads its
        # `_no_split_modules`): passed on from the backbone, so it shards per layer (issue 14)
        self._no_split_modules = getattr(backbone, "_no_split_modules", None)
        # float32 and bias-free like the reference head; pooled states are cast up to meet it, and it
        # runs outside autocast (`forward`).
        self.head = nn.Linear(hidden_size, n_outputs, bias=False)
        nn.init.zeros_(self.head.weight)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Pooled states; `attention_mask` None for a minibatch without padding (see `unpadded`)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.features(input_ids, attention_mask)
        # outside autocast: a bf16 head would quantise the logits, so the probabilities (soft labels,
        # AUROC) of nearby examples would collapse onto the same few values (issue 14)
        with torch.autocast(feats.device.type, enabled=False):
            return self.head(feats.to(self.head.weight.dtype))


class PairScores(nn.Module):
    """A pairwise reward model's logits [N,2] = (r(choice 0), r(choice 1)) from a scalar scorer.

    The batch holds the N examples' choice-0 inputs, then their choice-1 inputs (2N rows, one
    forward pass), and `scorer` maps them to [2N,1] rewards. The softmax of the two logits is
    σ(r1 − r0), so cross-entropy against the preferred choice is the Bradley–Terry loss.
    """

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer
        self._no_split_modules = getattr(scorer, "_no_split_modules", None)  # FSDP per layer (BinaryClassifier)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        rewards = self.scorer(*inputs)[:, 0]
        return rewards.view(2, -1).t()


def load_classifier(
    spec: dict,
    *,
    dtype: torch.dtype,
    lora: dict | None,
    grad_checkpointing: bool,
    dropout: bool = False,
    n_outputs: int = 2,
    device: torch.device | str | None = None,
):
    """(BinaryClassifier with `n_outputs` logits, tokenizer). With `lora`, only the adapters and the head are trainable.

    Checkpointing is switched on here but, as in Hugging Face, only runs while the model is in
    training mode; the loop puts it there (`w2s_core.training.loop.prepare`).
    """
    backbone = load_backbone(spec, dtype, dropout, device=device)
    config = backbone.config
    if grad_checkpointing and backbone.supports_gradient_checkpointing:
        # transformers 5 renamed the method; both take the checkpoint kwargs first.
        enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        backbone = get_peft_model(
            backbone,
            LoraConfig(
                r=lora.get("r", 8),
                lora_alpha=lora.get("alpha", 16),
                lora_dropout=lora.get("dropout", 0.0),
                target_modules=lora.get("target_modules") or "all-linear",
            ),
        )
    model = BinaryClassifier(backbone, config.hidden_size, POOLING[model_arch(spec, config)], n_outputs)
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


def token_limit(max_length: int, model_max_length) -> int:
    """The tokens a model reads of one input: max_length, and the model's own limit when it has one."""
    if isinstance(model_max_length, int) and model_max_length < 1_000_000:  # HF's huge sentinel means "no limit"
        return min(max_length, model_max_length)
    return max_length


def encode(tokenizer, texts: Sequence[str], max_length: int, side: str = "right") -> list[list[int]]:
    """Token ids per text, truncated to `token_limit` on the `side` given ("right": keep the start).

    Special tokens survive truncation on either side: Hugging Face cuts the text's own tokens and
    then adds them, so with side "left" (`[data] long_inputs = "truncate_left"`) a BERT-style input
    keeps its [CLS] in front and [SEP] at the end, a BOS-prefixed one its BOS, around the text's last
    tokens. (`long_inputs = "drop"` encodes on the right after `w2s_core.training.lengths` left out
    every input that would be cut, so nothing is.)
    """
    limit = token_limit(max_length, getattr(tokenizer, "model_max_length", None))
    before = tokenizer.truncation_side
    tokenizer.truncation_side = side
    try:
        ids = tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
    finally:
        tokenizer.truncation_side = before
    # An empty text would leave nothing to pool (and an all-masked attention row): give it one token.
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return [seq if seq else [fallback] for seq in ids]


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`; to a GPU from pinned memory without blocking the host.

    A plain `.to("cuda")` of pageable memory waits until the GPU has run every queued kernel (a host
    sync per minibatch); a pinned, non-blocking copy is queued behind them instead. Elsewhere `.to`.
    """
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def unpadded(batch_ids: list[list[int]]) -> bool:
    """Whether every sequence of the minibatch has the same length, so collate adds no padding."""
    return len({len(seq) for seq in batch_ids}) <= 1


def collate(batch_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence in the batch: (input_ids, attention_mask), both int64."""
    width = max((len(seq) for seq in batch_ids), default=0)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, seq in enumerate(batch_ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask
