"""How big the trained model is: result.json's `n_params`, the x axis of `w2s plot`'s size figures.

A finetune counts every parameter of the module it trains (the backbone and its head; LoRA adapters
left out, so a LoRA job's size is its base model's). A probe trains only a linear head on frozen
features, but the figure's "strong-model size" is the backbone's: it counts the backbone as well,
built from its config on the meta device (no weights read, no memory), since a probe whose features
are cached never loads the backbone at all. Counted before `accelerate.prepare`, which shards the
parameters under FSDP.
"""

from __future__ import annotations

import torch

from w2s_core.jobdir import Result
from w2s_core.training.models import _load_config, causal_lm_body, has_auto_model
from w2s_core.training.setup import Setup


def _count(module: torch.nn.Module) -> int:
    # named_parameters drops tied duplicates (an LM's tied embeddings count once); no pooler: the
    # trainer drops it (models.load_backbone), so a probe's count matches its finetune's
    return sum(
        p.numel() for name, p in module.named_parameters() if "lora_" not in name and not name.startswith("pooler.")
    )


def backbone_params(spec: dict) -> int:
    """The backbone's parameters, from its config alone (meta device: nothing allocated)."""
    from transformers import AutoModel, AutoModelForCausalLM

    config = _load_config(spec)
    auto = AutoModel if has_auto_model(config) else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=bool(spec.get("trust_remote_code", False)))
    if auto is AutoModelForCausalLM:
        model = causal_lm_body(spec, model)
    return _count(model)


def model_size(job: dict, setup: Setup) -> dict[str, int]:
    """{Result.N_PARAMS: parameters}, or {} when they cannot be counted (a size is a nicety for the
    figures: failing to count must never fail a job that trained)."""
    try:
        n = _count(setup.module)
        if job["train"].get("mode") == "probe":
            n += backbone_params(job["model"])
    except Exception:  # noqa: BLE001 - any failure here only costs the figures their size axis
        return {}
    return {Result.N_PARAMS: n}
