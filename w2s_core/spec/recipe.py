"""TOML recipes: read, validate against a schema, and resolve into the typed entries the planner expands.

Validation runs before anything trains and reports every problem at once, each naming the file,
the key and what was expected, so a typo costs one edit and not one crashed job. The value checks
and the problem collector live in `checks.py`, the schema tables in `schema.py`; this module parses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from w2s_core.data import DATASETS
from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec.checks import (
    Problems,
    is_int,
    str_list,
    string,
)
from w2s_core.spec.losses import LOSS_CHOICES, LOSS_DEFAULTS, loss_defaults, resolve_loss
from w2s_core.spec.registry import model_defaults
from w2s_core.spec.schema import (
    ALIASES,
    CHAIN_KEYS,
    DATA_DEFAULTS,
    DATA_KEYS,
    LAUNCH_KEYS,
    METHOD_TRAIN_KEYS,
    MODEL_KEYS,
    MODEL_TRAIN_KEYS,
    RELABEL,
    SELECT,
    TOP_KEYS,
    TRAIN_DEFAULTS,
    TRAIN_KEYS,
    TRANSFER_KEYS,
    Chain,
    Method,
    ModelEntry,
)


@dataclass
class Recipe:
    """A validated recipe: everything the planner needs, with defaults filled in."""

    path: Path
    name: str
    text: str
    hash: str  # sha256 of the file's text: the store's recipe key
    data: dict
    train: dict
    models: list[ModelEntry]  # ordered weak -> strong; each a full model spec with training settings
    pairs: list[tuple[str, str]]
    transfers: list[Method]
    chains: list[Chain]
    seeds: list[int]
    launch: dict = field(default_factory=dict)

    def model(self, name: str) -> ModelEntry:
        return next(m for m in self.models if m["name"] == name)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; raise InputError describing every problem found."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: recipe file not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    return parse_recipe(raw, path, text)


def parse_recipe(raw: dict, path: Path, text: str) -> Recipe:
    """Validate a parsed recipe (`path` resolves its relative paths and names it in errors)."""
    err = Problems(path, ALIASES)
    for key in raw:
        if key not in TOP_KEYS:
            err.unknown("", key, TOP_KEYS)
    for key in ("data", "train", "launch"):
        if key in raw and not isinstance(raw[key], dict):
            err.add(key, f"expected a table [{key}], got {raw[key]!r}")
    data = _data(_table(raw, "data"), path, err, "data" in raw)
    train = _table(raw, "train")
    err.check_table("train.", train, TRAIN_KEYS)
    launch = _launch(_table(raw, "launch"), path, err)
    models = _models(raw.get("models"), train, err)
    _selection(data, train, models, err)
    names = [m["name"] for m in models]
    pairs = _pairs(raw.get("pairs"), names, err)
    transfers = _transfers(raw.get("transfer"), err)
    chains = _chains(raw.get("bootstrap"), names, err)
    seeds = _seeds(raw.get("seeds", [0]), err)
    for key in ("name", "description"):
        if key in raw and string(raw[key]):
            err.add(key, f"expected a non-empty string, got {raw[key]!r}")
    if not pairs and not chains and 0 < len(models) < 2 and "models" in raw:
        err.add("models", "expected at least two models (a weak and a strong one), or a [[bootstrap]] chain")
    err.raise_if_any()
    return Recipe(
        path=path,
        name=raw.get("name") or path.stem,
        text=text,
        hash=hashlib.sha256(text.encode()).hexdigest(),
        data=data,
        train={**TRAIN_DEFAULTS, **train},
        models=models,
        pairs=pairs,
        transfers=transfers,
        chains=chains,
        seeds=seeds,
        launch=launch,
    )


def _table(raw: dict, key: str) -> dict:
    """A copy of table `key`, or {} when it is absent or not a table (that is reported separately)."""
    return dict(raw[key]) if isinstance(raw.get(key), dict) else {}


def _launch(launch: dict, path: Path, err: Problems) -> dict:
    err.check_table("launch.", launch, LAUNCH_KEYS)
    if isinstance(launch.get("accelerate_config"), str):  # relative to the recipe, not to the caller's cwd
        launch["accelerate_config"] = str((path.parent / launch["accelerate_config"]).resolve())
    return launch


def _seeds(seeds: Any, err: Problems) -> list[int]:
    if not (isinstance(seeds, list) and seeds and all(is_int(s) and s >= 0 for s in seeds)):
        err.add("seeds", f"expected a non-empty list of integers >= 0, got {seeds!r}")
        return [0]
    if len(set(seeds)) != len(seeds):
        err.add("seeds", f"expected distinct seeds, got {seeds!r}")
    return list(seeds)


def _data(data: dict, path: Path, err: Problems, present: bool) -> dict:
    if not present:
        err.add("data", "missing table [data] (a dataset `name` or a local file `path`, plus n_train and n_test)")
        return {}
    err.check_table("data.", data, DATA_KEYS)
    if ("name" in data) == ("path" in data):
        err.add("data", "expected exactly one of `name` (a registered dataset) or `path` (a local file)")
    for key in ("n_train", "n_test"):
        if key not in data:
            err.add(f"data.{key}", "missing (a positive integer)")
    if is_int(data.get("n_train")) and data["n_train"] % 2:
        err.add("data.n_train", f"expected an even number (it is split into halves A and B), got {data['n_train']}")
    if isinstance(data.get("name"), str) and data["name"] not in DATASETS:
        hint = did_you_mean(data["name"], DATASETS)
        err.add("data.name", f"unknown dataset {data['name']!r}{hint}; known: {', '.join(sorted(DATASETS))}")
    out = {**DATA_DEFAULTS, **data}
    if isinstance(out.get("path"), str):  # relative to the recipe, not to the caller's cwd
        out["path"] = str((path.parent / out["path"]).resolve())
    return out


def _models(value: Any, train: dict, err: Problems) -> list[ModelEntry]:
    if value is None:
        err.add("models", "missing: a list of model names or [[models]] tables, ordered weak to strong")
        return []
    if not isinstance(value, list) or not value:
        err.add("models", f"expected a non-empty list of model names or tables, got {value!r}")
        return []
    models: list[ModelEntry] = []
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            err.add(f"models[{i}]", f"expected a model name or a table with a `name`, got {entry!r}")
            continue
        err.check_table(f"models[{i}].", entry, MODEL_KEYS)
        spec = model_defaults(entry.get("path", entry["name"]))
        spec.update({k: train[k] for k in MODEL_TRAIN_KEYS if k in train})
        spec.update(entry)
        models.append(spec)  # type: ignore[arg-type]
    names = [m["name"] for m in models]
    for name in {n for n in names if names.count(n) > 1}:
        err.add("models", f"model name {name!r} appears more than once; give each entry a distinct `name`")
    for m in models:
        batch, mini = m.get("batch_size"), m.get("minibatch_size")
        if is_int(mini) and is_int(batch) and batch % mini:
            err.add(f"models.{m['name']}", f"batch_size {batch} must be a multiple of minibatch_size {mini}")
    return models


def _selection(data: dict, train: dict, models: list[ModelEntry], err: Problems) -> None:
    """Per model's settings: val_size leaves examples to train on, and select = "val_*" has a validation
    slice and eval points to choose between. Each problem is named where its key was set, once."""
    half = data["n_train"] // 2 if is_int(data.get("n_train")) else None
    found: dict[str, str] = {}
    for m in models:
        keys = ("val_size", "select", "eval_every")
        own = {k: m[k] for k in keys if k in m}
        t = {**TRAIN_DEFAULTS, **train, **own}
        if not (is_int(t["val_size"]) and is_int(t["eval_every"]) and t["select"] in SELECT):
            continue  # a bad value: the key checks report it
        where = {k: f"models.{m['name']}.{k}" if k in own else f"train.{k}" for k in keys}
        if half is not None and t["val_size"] >= half:
            found[where["val_size"]] = (
                f"{t['val_size']} leaves no training examples: a job trains on half of "
                f"data.n_train ({half}) less val_size; hold out fewer or raise n_train"
            )
        if t["select"] != "final" and not t["val_size"]:
            found[where["select"]] = (
                f"{t['select']!r} keeps the checkpoint with the best validation figure, but "
                "val_size is 0: set val_size (e.g. 1000, as EleutherAI/w2s) or select = 'final'"
            )
        elif t["select"] != "final" and not t["eval_every"]:
            found[where["eval_every"]] = (
                f"select = {t['select']!r} chooses between eval points, but eval_every is 0: "
                "set eval_every (e.g. 25, as EleutherAI/w2s), the steps between them"
            )
    for key, msg in found.items():
        err.add(key, msg)


def _known_model(name: Any, names: list[str], key: str, err: Problems) -> bool:
    if name in names:
        return True
    err.add(key, f"unknown model {name!r}{did_you_mean(name, names)}; the recipe's models are: {', '.join(names)}")
    return False


def _pairs(value: Any, names: list[str], err: Problems) -> list[tuple[str, str]]:
    """Explicit pairs may repeat a model (["m", "m"]: m trained on its own GT job's labels, as EleutherAI/w2s
    runs strong->strong); its PGR is undefined (ceiling == weak) and the analysis shows it as n/a."""
    if value is None:  # every weak < strong pair, in the recipe's order
        return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    if not isinstance(value, list):
        err.add("pairs", f"expected a list of [weak, strong] pairs, got {value!r}")
        return []
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            err.add(f"pairs[{i}]", f"expected [weak, strong], got {pair!r}")
        elif all(_known_model(m, names, f"pairs[{i}]", err) for m in dict.fromkeys(pair)):  # a self-pair's error once
            pairs.append((pair[0], pair[1]))
    return pairs


def _method(entry: dict, where: str, err: Problems) -> Method | None:
    """Split a transfer/chain table into its loss name, the loss's own parameters and its train overrides."""
    err.check_table(where, {k: entry[k] for k in ("name", *METHOD_TRAIN_KEYS) if k in entry}, TRANSFER_KEYS)
    train = {k: entry[k] for k in METHOD_TRAIN_KEYS if k in entry}
    loss = entry.get("loss", "xent")
    params = {k: v for k, v in entry.items() if k not in TRANSFER_KEYS and k not in CHAIN_KEYS}
    # a key that is neither the table's own nor the loss's: report it with every allowed key
    if isinstance(loss, str) and loss in LOSS_DEFAULTS:
        own = [*TRANSFER_KEYS, *(CHAIN_KEYS if "chain" in entry else ())]
        loss_keys = [*loss_defaults(loss, params), *LOSS_CHOICES.get(loss, {})]
        for key in [k for k in params if k not in loss_keys]:
            err.unknown(where, key, dict.fromkeys(own + loss_keys))
            del params[key]
    try:
        resolve_loss(str(loss), params)
    except InputError as exc:
        err.add(f"{where}loss" if str(loss) not in LOSS_DEFAULTS else where.rstrip("."), str(exc))
        return None
    method: Method = {
        "name": entry.get("name", loss),
        "loss": loss,
        "params": {**loss_defaults(loss, params), **params},
    }
    if train:
        method["train"] = train
    return method


def _transfers(value: Any, err: Problems) -> list[Method]:
    if value is None:
        return [{"name": "xent", "loss": "xent", "params": {}}]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        err.add("transfer", f"expected [[transfer]] tables (each with a `loss`), got {value!r}")
        return []
    out = [m for i, entry in enumerate(value) if (m := _method(entry, f"transfer[{i}].", err))]
    names = [m["name"] for m in out]
    for name in {n for n in names if names.count(n) > 1}:
        err.add("transfer", f"method name {name!r} appears twice; give one a distinct `name`")
    return out


def _chains(value: Any, names: list[str], err: Problems) -> list[Chain]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        err.add("bootstrap", f"expected [[bootstrap]] tables with a `chain = [M1, M2, ...]`, got {value!r}")
        return []
    return [c for i, entry in enumerate(value) if (c := _chain(entry, f"bootstrap[{i}].", names, err))]


def _chain(entry: dict, where: str, names: list[str], err: Problems) -> Chain | None:
    chain = entry.get("chain")
    if str_list(chain):
        err.add(f"{where}chain", f"expected a list of model names [M1, M2, ...], got {chain!r}")
        return None
    if len(chain) < 2:
        err.add(f"{where}chain", f"a chain needs at least two models, got {chain!r}")
        return None
    if not all(_known_model(m, names, f"{where}chain", err) for m in chain):
        return None
    relabel = entry.get("relabel", "alternate")
    if relabel not in RELABEL:
        err.add(f"{where}relabel", f"expected 'alternate' or 'same', got {relabel!r}")
    method = _method(entry, where, err)
    if method is None:
        return None
    return {
        **method,
        "name": entry.get("name", "bootstrap-" + method["name"]),
        "models": list(chain),
        "relabel": relabel,
    }
