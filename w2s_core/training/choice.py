"""Scoring a set of candidate continuations with a causal LM: chess moves, and the label words of prompting.

`ChoiceLM` turns a causal LM into a classifier over per-example candidate sets: logits[n, c] is
the sum of log p(token | everything before it) over the tokens of candidate c after context n.
Its softmax over the candidates is the model's choice distribution, so the training loop trains
it like any classifier (cross-entropy on [N, C] logits) and prompting reads it untrained.

How an item is encoded (`encode_choices`):
- the context is the tokenizer's encoding of the text, its leading special tokens (a BOS) kept and
  trailing ones (an appended EOS) dropped, since the candidate continues the text;
- each candidate is tokenised on its own, without special tokens (as lm-evaluation-harness scores
  continuations; a BPE may merge differently across the seam than in the joined text);
- the context is cut from the LEFT so that it and the item's longest candidate fit `max_length`:
  the end of the context, where the question (the position, the query) is, survives;
- an empty context reads one BOS/EOS token, so the first candidate token has a position to be
  predicted from.

How it is computed (`ChoiceLM.forward`): the LM's body runs once per multi-token candidate on
context + candidate[:-1] (the last token is only predicted, never read), and the output head is
applied ONLY at the positions that predict a candidate token: never the [S, T, V] logits. With
causal attention the hidden state at the context's last position is the same in every sequence
of an item, so single-token candidates (label words) share one sequence: K label words cost one
pass, not K. Missing candidates of a ragged set hold `PAD_LOGIT`. The cost is one sequence per
candidate: ~30-40 legal moves per chess position; the [P, V] float32 head output (P = candidate
tokens in the minibatch) is the largest tensor beyond the body's activations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from w2s_core.errors import InputError, W2SError
from w2s_core.training.losses import PAD_LOGIT
from w2s_core.training.models import (
    _load_config,
    _load_error,
    _remote_kwargs,
    causal_lm_body,
    load_tokenizer,
    model_arch,
    placement,
    resolve_path,
    token_limit,
)
from w2s_core.training.precision import Precision, job_precision

Item = tuple[list[int], list[list[int]]]  # (context ids, candidate ids per candidate)


# --- loading --------------------------------------------------------------------------------


def load_causal_lm(
    spec: dict,
    dtype: torch.dtype,
    dropout: bool = False,
    grad_checkpointing: bool = False,
    device: torch.device | str | None = None,
):
    """The model as AutoModelForCausalLM, through the same path rules as `models.load_backbone`.

    Dropout is zeroed in the config unless `dropout` (as `load_backbone`, so training mode computes
    the same function every pass) and the KV cache is off. A checkpoint saved as its bare body (our
    built-in tiny-random-gpt2 is a GPT2Model) loads too: its LM head is tied to the input
    embeddings. A head that is neither tied nor in the checkpoint would be random: an error.
    """
    from transformers import AutoModelForCausalLM

    config = _load_config(spec)
    for key, value in config.to_dict().items():  # as load_backbone
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float) and not dropout:
            setattr(config, key, 0.0)
    if hasattr(config, "use_cache"):
        config.use_cache = False
    path = resolve_path(spec)
    try:
        lm, info = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, output_loading_info=True, **placement(device), **_remote_kwargs(spec)
        )
    except Exception as e:
        raise _load_error(spec, path, e) from e
    head = lm.get_output_embeddings()
    head_name = next((name for name, module in lm.named_modules() if module is head), None)
    if head is None or any(key.startswith(f"{head_name}.") for key in info.get("missing_keys", ())):
        raise W2SError(
            f"Model '{spec.get('name', path)}' has no trained language-model head in '{path}' "
            f"({type(lm).__name__}: the head is neither in the checkpoint nor tied to the embeddings), "
            "so it cannot score text. Use a causal LM checkpoint."
        )
    if grad_checkpointing and lm.supports_gradient_checkpointing:
        enable = getattr(lm, "activation_checkpointing_enable", None) or lm.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    return lm


def require_causal(spec: dict, what: str) -> None:
    """An InputError unless the model is a causal LM (its `arch`, else detected from its config)."""
    if model_arch(spec) != "causal":
        raise InputError(
            f"Model '{spec.get('name', spec['path'])}' is an encoder (arch = \"encoder\"): {what} needs a "
            "causal (decoder-only) language model such as gpt2, Pythia or Qwen. Pick a causal model for it."
        )


# --- the scorer -----------------------------------------------------------------------------


class ChoiceLM(nn.Module):
    """A causal LM's body and output head; forward gives summed candidate log-probabilities [N, Cmax]."""

    def __init__(self, lm: nn.Module, spec: dict | None = None):
        super().__init__()
        self.body = causal_lm_body(spec or {"path": type(lm).__name__}, lm)
        self.head = lm.get_output_embeddings()
        self._no_split_modules = getattr(lm, "_no_split_modules", None)  # FSDP per layer (models.BinaryClassifier)
        config = lm.config
        # Logit transforms some LMs apply after the head (Gemma 2's soft cap, Cohere's scale).
        self.softcap = getattr(config, "final_logit_softcapping", None)
        scale = getattr(config, "logit_scale", None)
        self.scale = float(scale) if isinstance(scale, (int, float)) else None

    def forward(
        self,
        input_ids: torch.Tensor,  # [S, T] right-padded sequences
        attention_mask: torch.Tensor,  # [S, T]
        rows: torch.Tensor,  # [P] the sequence of each candidate token
        cols: torch.Tensor,  # [P] the position whose hidden state predicts it
        targets: torch.Tensor,  # [P] its token id
        slots: torch.Tensor,  # [P] its candidate, as n * Cmax + c
        present: torch.Tensor,  # [N, Cmax] bool: which candidates exist
    ) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask)[0]
        logits = self.head(hidden[rows, cols]).float()  # [P, V]: only the positions needed
        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        token_logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
        sums = torch.zeros(present.numel(), dtype=torch.float32, device=token_logp.device)
        sums = sums.index_add(0, slots, token_logp).view(present.shape)
        return torch.where(present, sums, torch.full_like(sums, PAD_LOGIT))


# --- encoding and batching ------------------------------------------------------------------


def _split_specials(with_specials: list[int], plain: list[int]) -> tuple[list[int], list[int]]:
    """(leading special tokens, the text's own tokens) from the encodings with and without specials."""
    for k in range(len(with_specials) - len(plain) + 1):
        if with_specials[k : k + len(plain)] == plain:
            return with_specials[:k], plain
    return [], plain  # a tokenizer whose specials change the text's tokens: read the text alone


def encode_choices(
    tok,
    texts: Sequence[str],
    choices: Sequence[Sequence[str]],
    max_length: int,
    where: str = "an example",
    cut: list[int] | None = None,
) -> list[Item]:
    """(context ids, [candidate ids]) per example; see the module docstring for the rules.

    `cut`, when given, collects the positions of the examples whose context was cut on the left.
    """
    limit = token_limit(max_length, getattr(tok, "model_max_length", None))
    unique = sorted({c for cands in choices for c in cands})
    cand_ids = dict(zip(unique, tok(unique, add_special_tokens=False, verbose=False)["input_ids"] if unique else []))
    empty = [c for c in unique if not cand_ids[c]]
    if empty:
        raise InputError(f"{where}: the candidate {empty[0]!r} has no tokens, so it cannot be scored.")
    full = tok(list(texts), verbose=False)["input_ids"]
    plain = tok(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    start = next((t for t in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if t is not None), 0)
    items = []
    for n, cands in enumerate(choices):
        if not cands:
            raise InputError(f"{where}: example {n} has no candidates to choose from.")
        ids = [cand_ids[c] for c in cands]
        lead, body = _split_specials(full[n], plain[n])
        budget = limit - max(map(len, ids)) - len(lead)
        if budget < 0 or (budget == 0 and not lead):
            raise InputError(
                f"{where}: max_length = {max_length} leaves no room for the context next to a "
                f"{max(map(len, ids))}-token candidate. Raise the model's max_length."
            )
        context = lead + (body[-budget:] if budget else [])
        if cut is not None and len(body) > budget:
            cut.append(n)
        items.append((context or [start], ids))
    return items


def collate_choices(items: list[Item], pad_id: int) -> tuple[torch.Tensor, ...]:
    """ChoiceLM.forward's arguments for a minibatch of items (see the module docstring)."""
    seqs: list[list[int]] = []
    rows, cols, targets, slots = [], [], [], []
    width = max(len(cands) for _, cands in items)
    present = torch.zeros((len(items), width), dtype=torch.bool)
    for n, (context, cands) in enumerate(items):
        end = len(context) - 1  # the position that predicts a candidate's first token
        own = {}
        for c, cand in enumerate(cands):
            if len(cand) > 1:
                own[c] = len(seqs)
                seqs.append(context + cand[:-1])
        shared = min(own.values()) if own else len(seqs)
        if not own:
            seqs.append(list(context))
        for c, cand in enumerate(cands):
            present[n, c] = True
            for j, token in enumerate(cand):
                rows.append(own.get(c, shared))
                cols.append(end + j)
                targets.append(token)
                slots.append(n * width + c)
    seq_width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), seq_width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), seq_width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    index = (torch.tensor(v, dtype=torch.long) for v in (rows, cols, targets, slots))
    return (input_ids, mask, *index, present)


# --- chess finetuning -----------------------------------------------------------------------


def split_items(job: dict, splits: dict, tok) -> dict[str, list[Item]]:
    """The encoded items of the splits a job reads: its training split, test and its predict split."""
    names = {"train": job["train_split"], "test": "test"}
    if job["predict_split"]:
        names["predict"] = job["predict_split"]
    max_length = job["train"]["max_length"]
    out = {}
    for role, name in names.items():
        split = splits[name]
        if getattr(split, "choices", None) is None:
            raise W2SError(f'split {name} has no candidate sets: choice scoring needs [data] kind = "chess"')
        out[role] = encode_choices(tok, split.texts, split.choices, max_length, f"split {name}")
    return out


def build_choice(job: dict, splits: dict, device: torch.device):
    """The chess finetune `Setup`: a ChoiceLM over the model, inputs = encoded (position, legal moves) items.

    dtype and autocast as `setup.build_finetune` (`precision.job_precision`). With LoRA the adapters go
    on the body; the output head is tied to (or beside) the frozen embeddings and stays frozen.
    """
    from w2s_core.training.setup import Setup

    spec = job["model"]
    require_causal(spec, "scoring chess moves")
    module, _, precision = trainable_choice_lm(job, device)
    tok = load_tokenizer(spec)

    def batch(items):
        return tuple(t.to(device) for t in collate_choices(items, tok.pad_token_id))

    return Setup(module, batch, split_items(job, splits, tok), device, precision)


def trainable_choice_lm(job: dict, device: torch.device) -> tuple[ChoiceLM, torch.nn.Module, Precision]:
    """(ChoiceLM over the job's causal LM, the LM itself, its Precision), dtypes as `setup.build_finetune`.

    Weights' dtype and autocast from `precision.job_precision` ("auto" bf16 on a full finetune and
    float16 keep float32 master weights and autocast). With LoRA the adapters go on the body and the
    output head (tied to or beside the frozen embeddings) stays frozen. Chess finetuning and the
    generative stage share it.
    """
    spec, train = job["model"], job["train"]
    lora = train["lora"] if isinstance(train["lora"], dict) else ({} if train["lora"] else None)
    precision = job_precision(train, device, lora is not None)
    lm = load_causal_lm(
        spec,
        precision.weights,
        dropout=bool(train.get("train_with_dropout")),
        grad_checkpointing=bool(train.get("grad_checkpointing")),
        device=device,
    )
    module = ChoiceLM(lm, spec)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        for p in module.head.parameters():
            p.requires_grad_(False)
        module.body = get_peft_model(
            module.body,
            LoraConfig(
                r=lora.get("r", 8),
                lora_alpha=lora.get("alpha", 16),
                lora_dropout=lora.get("dropout", 0.0),
                target_modules=lora.get("target_modules") or "all-linear",
            ),
        )
    return module, lm, precision
