"""The recipe's [[transfer]] and [[bootstrap]] tables: a loss with its parameters and train overrides.

A table names its loss (`spec.losses`), the loss's own parameters (checked against their ranges and
filled with defaults), and optionally its own `lr`/`epochs` for the jobs it trains (the reference's
transfer_lr and transfer_epochs). A chain adds its models, weak to strong, and how steps relabel.
"""

from __future__ import annotations

from typing import Any

from w2s_core.errors import InputError
from w2s_core.spec.checks import Problems, grid_hint, str_list
from w2s_core.spec.losses import LOSS_CHOICES, LOSS_DEFAULTS, loss_defaults, resolve_loss
from w2s_core.spec.schema import CHAIN_KEYS, METHOD_TRAIN_KEYS, RELABEL, TRANSFER_KEYS, Chain, Method


def _method(entry: dict, where: str, err: Problems) -> Method | None:
    """Split a transfer/chain table into its loss name, the loss's own parameters and its train overrides."""
    err.check_table(where, {k: entry[k] for k in ("name", *METHOD_TRAIN_KEYS) if k in entry}, TRANSFER_KEYS)
    train = {k: entry[k] for k in METHOD_TRAIN_KEYS if k in entry}
    loss = entry.get("loss", "xent")
    if isinstance(loss, list):  # reads like a grid, but a loss is what a table is: one table per loss
        table = "[[bootstrap]]" if "chain" in entry else "[[transfer]]"
        err.add(f"{where}loss", f"expected one loss name, got {loss!r}; a list here is no grid: give each loss "
                                f"its own {table} table (grids sweep a loss's parameters, lr and epochs)")  # fmt: skip
        return None
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


def transfers_of(value: Any, err: Problems) -> list[Method]:
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


def chains_of(value: Any, names: list[str], err: Problems) -> list[Chain]:
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
    if not all(err.known(m, names, f"{where}chain") for m in chain):
        return None
    relabel = entry.get("relabel", "alternate")
    if relabel not in RELABEL:
        hint = grid_hint(where, "relabel") if isinstance(relabel, list) else ""
        err.add(f"{where}relabel", f"expected 'alternate' or 'same', got {relabel!r}{hint}")
    method = _method(entry, where, err)
    if method is None:
        return None
    return {
        **method,
        "name": entry.get("name", "bootstrap-" + method["name"]),
        "models": list(chain),
        "relabel": relabel,
    }
