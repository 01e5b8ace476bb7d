"""PGR by one swept key of a grid: `w2s results --by lr` and the Results screen's pivot.

A grid recipe's PGR table has a row per setup (task, kind, weak, strong, method, chain) and grid point.
Pivoting by KEY answers "which value of KEY is best": one row per setup and value of KEY, in the
table's order of setups and then by KEY's value; each is the row of the grid point with the highest PGR
(ours, `pgr_mean`; a point without one ranks last) among the points with that value, whatever the other
swept keys' values. The row keeps every column of that point (its `grid`, its flat columns) and adds
`by` (KEY), `best_of` (the other swept keys' values that gave it: {"alpha": 0.75}; {} when KEY is the
only swept key) and `points` (how many of the table's rows it was chosen from). A setup KEY does not
change (an xent transfer under an alpha sweep: its row's `grid` has no alpha) keeps one row, the best
over the other keys, after the setup's rows by value; its KEY column is absent. A row per setup and
every point, without choosing, is the table itself.
"""

from __future__ import annotations

import math
from typing import Any

from w2s_core.errors import InputError


def with_flat_columns(row: dict) -> dict:
    """`row` with a column per swept key of its `grid` (one a row's own columns already name is left in
    `grid` only), so CSV and --by read `lr` as a column."""
    for name, value in row.get("grid", {}).items():
        row.setdefault(name, value)
    return row


def swept(rows: list[dict]) -> list[str]:
    """The swept keys the rows name, in the order first seen."""
    return list(dict.fromkeys(name for row in rows for name in row.get("grid", {})))


def _setup(row: dict) -> tuple:
    return row.get("task"), row["kind"], row["weak"], row["strong"], row["method"], tuple(row.get("chain") or ())


def _order(value: Any) -> tuple:
    """Values of one key sort as numbers (true/false as 1/0), or as text when they are strings; None last."""
    if value is None:
        return (2, 0)
    return (1, value) if isinstance(value, str) else (0, value)


def _pgr(row: dict) -> float:
    value = row.get("pgr_mean", math.nan)
    return -math.inf if value is None or math.isnan(value) else value


def pivot(rows: list[dict], by: str, keys: list[str], recipe: str) -> list[dict]:
    """The rows pivoted by swept key `by` (see the module docstring); `keys` are the recipe's swept keys
    (an unknown `by` is an InputError naming them)."""
    if by not in keys:
        have = f"its grid sweeps {', '.join(keys)}" if keys else "it has no grid (no list values in the recipe)"
        raise InputError(f"--by {by}: recipe {recipe!r} sweeps no key {by!r}; {have}")
    setups: dict[tuple, int] = {}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        setup = _setup(row)
        setups.setdefault(setup, len(setups))
        groups.setdefault((setup, _value(row, by)), []).append(row)
    out = []
    for members in groups.values():
        best = max(members, key=_pgr)  # the first of equals: the earliest point
        best_of = {name: v for name, v in best.get("grid", {}).items() if name != by}
        out.append({**best, "by": by, "best_of": best_of, "points": len(members)})
    out.sort(key=lambda row: (setups[_setup(row)], _order(_value(row, by))))
    return out


def _value(row: dict, by: str) -> Any:
    """The row's value of `by`, or None when its setup does not depend on it."""
    return row.get("grid", {}).get(by)
