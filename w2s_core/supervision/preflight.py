"""Checks a recipe must pass before anything is queued, so bad input fails in seconds, not in a job log.

Recipe validation and plan building already catch bad keys, values and local model folders; this
adds what needs the data or the machine: the dataset loads with its columns and labels,
and, on an offline node (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, see `w2s prefetch`), every Hugging Face
model and dataset is in the cache before anything else is read, so a missing one is named at once.
A suite checks every task's models and data.
"""

from __future__ import annotations

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.data import make_splits
from w2s_core.data.cache import dataset_in_cache, datasets_cache
from w2s_core.data.hub import HUB_SOURCES, env_flag
from w2s_core.data.registry import source
from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec.models import looks_local
from w2s_core.spec.recipe import Recipe
from w2s_core.spec.registry import BUILTIN_TINY, MODEL_DEFAULTS
from w2s_core.supervision.prefetch import model_in_cache


def hub_offline() -> bool:
    """Read now, not at import: huggingface_hub freezes its own flag when first imported."""
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def _dataset_offline(recipe: Recipe) -> None:
    """Offline, a Hub dataset that was never loaded with these caches fails here, before `datasets` is imported.
    `recipe` is one part (a plain recipe, or a suite's task)."""
    name, info = source(recipe.data)
    src = HUB_SOURCES.get(name) if info is not None else None
    if src is None or not (env_flag("HF_DATASETS_OFFLINE") or env_flag("HF_HUB_OFFLINE")):
        return
    if not dataset_in_cache(src.hub_id):
        raise InputError(
            f"{recipe.path}: dataset '{name}' ({src.hub_id}) is not in the Hugging Face caches "
            f"(HF_DATASETS_CACHE={datasets_cache()}) and HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set. Run "
            f"`w2s prefetch {recipe.path}` where there is network, with the same cache variables, then run again."
        )


def _models_offline(recipe: Recipe) -> None:
    """Offline, every Hub model must resolve (config.json and weights) from the cache the environment names."""
    if not hub_offline():
        return  # a hub model may still download; a failure is then diagnosed in the job's status
    for model in (m for part in recipe.parts for m in part.models):
        path = model["path"]
        if path in BUILTIN_TINY or path in PACKAGED_MODELS or looks_local(path):
            continue
        if model_in_cache(path, model.get("revision")) is None:
            known = [*BUILTIN_TINY, *PACKAGED_MODELS, *MODEL_DEFAULTS]
            raise InputError(
                f"{recipe.path}: model '{model['name']}' has path '{path}'{did_you_mean(path, known)}, which is "
                "neither a built-in model nor a local folder, and is not in the Hugging Face cache while "
                "HF_HUB_OFFLINE is set. Fix the name, download it where there is network "
                f"(`w2s prefetch {recipe.path}`), or point `path` at a local directory holding config.json "
                "and weights."
            )


def preflight(recipe: Recipe) -> None:
    _models_offline(recipe)  # cache look-ups first: they take milliseconds, loading the data may not
    for part in recipe.parts:
        _dataset_offline(part)
    for part in recipe.parts:
        try:  # a missing file/column, bad labels or n_test too big fail here
            make_splits(part.data, recipe.seeds[0])
        except InputError as exc:
            if not recipe.is_suite:
                raise
            raise InputError(f"task {part.name!r}: {exc}") from None
