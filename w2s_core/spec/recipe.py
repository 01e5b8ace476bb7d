"""TOML recipes: read, validate against a schema, and resolve into plain dicts the planner expands.

Validation runs before anything trains and reports every problem at once, each naming the file,
the key and what was expected, so a typo costs one edit and not one crashed job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec.losses import LOSS_DEFAULTS, resolve_loss
from w2s_core.spec.registry import model_defaults

# A check returns None when the value is fine, else what was expected.
Check = Callable[[Any], "str | None"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pos_int(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 else "a positive integer"


def nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "an integer >= 0"


def pos_num(v: Any) -> str | None:
    return None if _is_num(v) and v > 0 else "a positive number"


def nonneg_num(v: Any) -> str | None:
    return None if _is_num(v) and v >= 0 else "a number >= 0"


def fraction(v: Any) -> str | None:
    return None if _is_num(v) and 0 <= v <= 1 else "a number between 0 and 1"


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def str_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, str) and x for x in v)
    return None if ok else "a list of strings"


def table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a table"


def lora_value(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, dict):
        bad = set(v) - set(LORA_KEYS)
        if not bad:
            return None
        return f"a table with keys {', '.join(LORA_KEYS)} (unknown: {', '.join(sorted(bad))})"
    return "true, false or a table {r, alpha, dropout, target_modules}"


LORA_KEYS = ("r", "alpha", "dropout", "target_modules")

DATA_KEYS: dict[str, Check] = {
    "name": string,
    "path": string,
    "text_column": string,
    "label_column": string,
    "n_train": pos_int,
    "n_test": pos_int,
    "seed": nonneg_int,
    "balance": boolean,
    "revision": string,
    "n_total": pos_int,
    "noise": fraction,
    "train_pool": one_of("per_seed", "fixed"),
}
DATA_DEFAULTS = {"text_column": "text", "label_column": "label", "seed": 0, "balance": False}

TRAIN_KEYS: dict[str, Check] = {
    "mode": one_of("finetune", "probe"),
    "epochs": pos_num,
    "lr": pos_num,
    "batch_size": pos_int,
    "minibatch_size": pos_int,
    "max_length": pos_int,
    "schedule": one_of("cosine", "linear", "constant"),
    "lr_warmup_frac": fraction,
    "weight_decay": nonneg_num,
    "dtype": one_of("auto", "float32", "bfloat16", "float16"),
    "lora": lora_value,
    "grad_checkpointing": boolean,
    "eval_every": nonneg_int,
}
TRAIN_DEFAULTS = {
    "mode": "finetune",
    "schedule": "cosine",
    "lr_warmup_frac": 0.0,
    "weight_decay": 0.0,
    "lora": False,
    "eval_every": 0,
}
# Keys a model's registry entry supplies and a recipe may override per model.
MODEL_TRAIN_KEYS = ("mode", "epochs", "lr", "batch_size", "minibatch_size", "max_length", "dtype", "grad_checkpointing")

MODEL_KEYS: dict[str, Check] = {
    "name": string,
    "path": string,
    "revision": string,
    "arch": one_of("causal", "encoder"),
    "trust_remote_code": boolean,
    "tiny": table,
    **TRAIN_KEYS,
}
TRANSFER_KEYS: dict[str, Check] = {"name": string, "loss": string}
CHAIN_KEYS: dict[str, Check] = {
    "chain": str_list,
    "loss": string,
    "name": string,
    "relabel": one_of("alternate", "same"),
}
LAUNCH_KEYS: dict[str, Check] = {"accelerate_config": string, "parallel": pos_int}
# Names users bring from other tools, mapped to ours for the did-you-mean hint.
ALIASES = {"learning_rate": "lr", "num_epochs": "epochs", "n_epochs": "epochs", "max_len": "max_length",
           "max_ctx": "max_length", "lr_schedule": "schedule", "micro_batch_size": "minibatch_size",
           "gradient_checkpointing": "grad_checkpointing", "seed": "seeds", "model": "models",
           "method": "loss", "aux_coef": "alpha"}
TOP_KEYS = ("name", "description", "data", "train", "models", "pairs", "transfer", "bootstrap", "seeds", "launch")


@dataclass
class Recipe:
    """A validated recipe: everything the planner needs, with defaults filled in."""

    path: Path
    name: str
    text: str
    hash: str
    data: dict
    train: dict
    models: list[dict]  # ordered weak -> strong; each a full model spec with training settings
    pairs: list[tuple[str, str]]
    transfers: list[dict]  # {"name", "loss", "params"}
    chains: list[dict]  # {"name", "models", "loss", "params", "relabel"}
    seeds: list[int]
    launch: dict = field(default_factory=dict)

    def model(self, name: str) -> dict:
        return next(m for m in self.models if m["name"] == name)


class _Errors:
    """Collects problems so the user sees all of them in one message."""

    def __init__(self, path: Path):
        self.path = path
        self.items: list[str] = []

    def add(self, key: str, msg: str) -> None:
        self.items.append(f"{key}: {msg}")

    def unknown(self, where: str, key: str, allowed) -> None:
        self.add(f"{where}{key}", f"unknown key{did_you_mean(key, allowed, ALIASES)}; allowed: {', '.join(sorted(allowed))}")

    def check_table(self, where: str, values: dict, schema: dict[str, Check], extra=()) -> None:
        for key, value in values.items():
            if key in extra:
                continue
            if key not in schema:
                self.unknown(where, key, list(schema) + list(extra))
                continue
            expected = schema[key](value)
            if expected:
                self.add(f"{where}{key}", f"expected {expected}, got {value!r}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise InputError(f"{self.path}: invalid recipe ({len(self.items)} problem(s)):\n{lines}")


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
    err = _Errors(path)
    for key in raw:
        if key not in TOP_KEYS:
            err.unknown("", key, TOP_KEYS)
    for key in ("data", "train", "launch"):
        if key in raw and not isinstance(raw[key], dict):
            err.add(key, f"expected a table [{key}], got {raw[key]!r}")
    data = _data(raw.get("data") if isinstance(raw.get("data"), dict) else {}, path, err, "data" in raw)
    train = dict(raw["train"]) if isinstance(raw.get("train"), dict) else {}
    err.check_table("train.", train, TRAIN_KEYS)
    launch = dict(raw["launch"]) if isinstance(raw.get("launch"), dict) else {}
    err.check_table("launch.", launch, LAUNCH_KEYS)
    if isinstance(launch.get("accelerate_config"), str):
        launch["accelerate_config"] = str((path.parent / launch["accelerate_config"]).resolve())
    models = _models(raw.get("models"), train, err)
    names = [m["name"] for m in models]
    pairs = _pairs(raw.get("pairs"), names, err)
    transfers = _transfers(raw.get("transfer"), err)
    chains = _chains(raw.get("bootstrap"), names, err)
    seeds = raw.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds)):
        err.add("seeds", f"expected a non-empty list of integers >= 0, got {seeds!r}")
        seeds = [0]
    elif len(set(seeds)) != len(seeds):
        err.add("seeds", f"expected distinct seeds, got {seeds!r}")
    for key in ("name", "description"):
        if key in raw and string(raw[key]):
            err.add(key, f"expected a non-empty string, got {raw[key]!r}")
    if not pairs and not chains and len(models) > 0 and "models" in raw:
        if len(models) < 2:
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
        seeds=list(seeds),
        launch=launch,
    )


def _data(data: dict, path: Path, err: _Errors, present: bool) -> dict:
    if not present:
        err.add("data", "missing table [data] (a dataset `name` or a local file `path`, plus n_train and n_test)")
        return {}
    err.check_table("data.", data, DATA_KEYS)
    if ("name" in data) == ("path" in data):
        err.add("data", "expected exactly one of `name` (a registered dataset) or `path` (a local file)")
    for key in ("n_train", "n_test"):
        if key not in data:
            err.add(f"data.{key}", "missing (a positive integer)")
    if _is_int(data.get("n_train")) and data["n_train"] % 2:
        err.add("data.n_train", f"expected an even number (it is split into halves A and B), got {data['n_train']}")
    if "name" in data and isinstance(data["name"], str):
        from w2s_core.data import DATASETS

        if data["name"] not in DATASETS:
            hint = did_you_mean(data["name"], DATASETS)
            err.add("data.name", f"unknown dataset {data['name']!r}{hint}; known: {', '.join(sorted(DATASETS))}")
    out = {**DATA_DEFAULTS, **data}
    if isinstance(out.get("path"), str):
        out["path"] = str((path.parent / out["path"]).resolve())
    return out


def _models(value: Any, train: dict, err: _Errors) -> list[dict]:
    if value is None:
        err.add("models", "missing: a list of model names or [[models]] tables, ordered weak to strong")
        return []
    if not isinstance(value, list) or not value:
        err.add("models", f"expected a non-empty list of model names or tables, got {value!r}")
        return []
    models = []
    for i, entry in enumerate(value):
        where = f"models[{i}]."
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            err.add(f"models[{i}]", f"expected a model name or a table with a `name`, got {entry!r}")
            continue
        err.check_table(where, entry, MODEL_KEYS)
        spec = model_defaults(entry.get("path", entry["name"]))
        spec.update({k: train[k] for k in MODEL_TRAIN_KEYS if k in train})
        spec.update(entry)
        models.append(spec)
    names = [m["name"] for m in models]
    for name in {n for n in names if names.count(n) > 1}:
        err.add("models", f"model name {name!r} appears more than once; give each entry a distinct `name`")
    for m in models:
        if _is_int(m.get("minibatch_size")) and _is_int(m.get("batch_size")):
            if m["batch_size"] % m["minibatch_size"]:
                err.add(
                    f"models.{m['name']}",
                    f"batch_size {m['batch_size']} must be a multiple of minibatch_size {m['minibatch_size']}",
                )
    return models


def _known_model(name: Any, names: list[str], key: str, err: _Errors) -> bool:
    if name in names:
        return True
    err.add(key, f"unknown model {name!r}{did_you_mean(name, names)}; the recipe's models are: {', '.join(names)}")
    return False


def _pairs(value: Any, names: list[str], err: _Errors) -> list[tuple[str, str]]:
    if value is None:
        return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    if not isinstance(value, list):
        err.add("pairs", f"expected a list of [weak, strong] pairs, got {value!r}")
        return []
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            err.add(f"pairs[{i}]", f"expected [weak, strong], got {pair!r}")
        elif pair[0] == pair[1]:
            err.add(f"pairs[{i}]", f"weak and strong must differ, got {pair!r}")
        elif all(_known_model(m, names, f"pairs[{i}]", err) for m in pair):
            pairs.append((pair[0], pair[1]))
    return pairs


def _method(entry: dict, where: str, err: _Errors) -> dict | None:
    """Split a transfer/chain table into its loss name and the loss's own parameters."""
    if "name" in entry and string(entry["name"]):
        err.add(f"{where}name", f"expected a non-empty string, got {entry['name']!r}")
    loss = entry.get("loss", "xent")
    params = {k: v for k, v in entry.items() if k not in TRANSFER_KEYS and k not in CHAIN_KEYS}
    try:
        resolve_loss(str(loss), params)
    except InputError as exc:
        err.add(f"{where}loss" if loss not in LOSS_DEFAULTS else where.rstrip("."), str(exc))
        return None
    return {"name": entry.get("name", loss), "loss": loss, "params": {**LOSS_DEFAULTS[loss], **params}}


def _transfers(value: Any, err: _Errors) -> list[dict]:
    if value is None:
        return [{"name": "xent", "loss": "xent", "params": {}}]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        err.add("transfer", f"expected [[transfer]] tables (each with a `loss`), got {value!r}")
        return []
    out = []
    for i, entry in enumerate(value):
        method = _method(entry, f"transfer[{i}].", err)
        if method:
            out.append(method)
    names = [m["name"] for m in out]
    for name in {n for n in names if names.count(n) > 1}:
        err.add("transfer", f"method name {name!r} appears twice; give one a distinct `name`")
    return out


def _chains(value: Any, names: list[str], err: _Errors) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        err.add("bootstrap", f"expected [[bootstrap]] tables with a `chain = [M1, M2, ...]`, got {value!r}")
        return []
    out = []
    for i, entry in enumerate(value):
        where = f"bootstrap[{i}]."
        chain = entry.get("chain")
        if str_list(chain):
            err.add(f"{where}chain", f"expected a list of model names [M1, M2, ...], got {chain!r}")
            continue
        if len(chain) < 2:
            err.add(f"{where}chain", f"a chain needs at least two models, got {chain!r}")
            continue
        if not all(_known_model(m, names, f"{where}chain", err) for m in chain):
            continue
        relabel = entry.get("relabel", "alternate")
        if one_of("alternate", "same")(relabel):
            err.add(f"{where}relabel", f"expected 'alternate' or 'same', got {relabel!r}")
        method = _method(entry, where, err)
        if method:
            out.append({**method, "name": entry.get("name", "bootstrap-" + method["name"]),
                        "models": list(chain), "relabel": relabel})
    return out
