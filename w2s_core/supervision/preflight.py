"""Checks a recipe must pass before anything is queued, so bad input fails in seconds, not in a job log.

Recipe validation and plan building already catch bad keys, values and local model folders; this
adds what needs the data or the machine: the dataset loads with its columns and binary labels,
and every Hugging Face model can be found when the hub is offline.
"""

from __future__ import annotations

import os

from huggingface_hub import try_to_load_from_cache

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.data import make_splits
from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec.models import looks_local
from w2s_core.spec.recipe import Recipe
from w2s_core.spec.registry import BUILTIN_TINY, MODEL_DEFAULTS


def hub_offline() -> bool:
    """Read now, not at import: huggingface_hub freezes its own flag when first imported."""
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE",
                                                                                    "TRANSFORMERS_OFFLINE"))


def preflight(recipe: Recipe) -> None:
    make_splits(recipe.data, recipe.seeds[0])  # a missing file/column, bad labels or n_test too big fail here
    if not hub_offline():
        return  # a hub model may still download; a failure is then diagnosed in the job's status
    for model in recipe.models:
        path = model["path"]
        if path in BUILTIN_TINY or path in PACKAGED_MODELS or looks_local(path):
            continue
        if try_to_load_from_cache(path, "config.json", revision=model.get("revision")) is None:
            known = [*BUILTIN_TINY, *PACKAGED_MODELS, *MODEL_DEFAULTS]
            raise InputError(
                f"{recipe.path}: model '{model['name']}' has path '{path}'{did_you_mean(path, known)}, which is "
                "neither a built-in model nor a local folder, and is not in the Hugging Face cache while "
                "HF_HUB_OFFLINE is set. Fix the name, download it where there is network, or point `path` "
                "at a local directory holding config.json and weights.")
