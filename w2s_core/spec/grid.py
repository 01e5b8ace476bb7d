"""Hyperparameter grids: list values in a recipe expand to grid points, each validated and planned as a recipe.

Which keys sweep (a TOML list of values where the key takes one value: `lr = [1e-5, 5e-5]`):
- every [train] key but `checkpoint_every` (it changes no result), in a suite's [train] and [task.train] too;
- the training settings of a [[models]] entry (the [train] keys it may override: lr, epochs, batch_size...);
- a [[transfer]] or [[bootstrap]] table's `lr` and `epochs`, and its loss's parameters (`alpha`,
  `warmup_frac`, `beta`, `warmup`).
Values are numbers, true/false or strings, each checked as the key's single value would be (a bad one
names its index: `train.lr[1]`), distinct. Keys that are lists by design keep their meaning (`seeds`, a
[[prompt]]'s `models` and `shots`, `label_words`, a chain, `sbatch`); a list anywhere else is an error
saying why that key does not sweep (`checks.grid_hint`).

The recipe is the product of its swept keys' values (the first key written varies slowest), at most
MAX_POINTS points. Each point is parsed as the recipe with those values (a problem every point has is
reported once; one only some points have names them), then all points are planned into one DAG
(`plan.build_plan`): a job a point does not change has the same key and runs once (the GT jobs of an
`alpha` sweep serve every alpha), and each role carries `grid`, its point's {name: value}.

Names: a swept key is named by its plain key ("lr") unless two swept keys share it; then each is
named by its qualified name, the TOML path with each table named by its `name`: `train.lr`,
`models.gpt2.lr`, `transfer.logconf.alpha`, `bootstrap.bootstrap-xent.epochs`, in a suite
`task.sciq.train.lr`. `w2s results --by NAME` and the TUI's pivot use these names.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from w2s_core.errors import InputError
from w2s_core.spec.checks import Problems, is_num
from w2s_core.spec.losses import LOSS_CHOICES, LOSS_DEFAULTS, loss_defaults, resolve_loss
from w2s_core.spec.schema import METHOD_TRAIN_KEYS, NEVER_HASHED_TRAIN, TRAIN_KEYS, TRANSFER_KEYS

MAX_POINTS = 1024  # a product larger than this is almost surely a typo, and would plan for minutes
# [train] keys (and a model's own training settings) that may sweep: all that can change a result.
SWEEPABLE_TRAIN = tuple(k for k in TRAIN_KEYS if k not in NEVER_HASHED_TRAIN)
_ABSENT = object()  # an axis whose every value was bad: its points leave the key out (they are not planned)


@dataclass(frozen=True)
class Axis:
    """One swept key: where it is in the TOML, its names, and its values in the recipe's order."""

    path: tuple  # keys and list indexes into the parsed TOML: ("transfer", 1, "alpha")
    written: str  # as problems name it: "transfer[1].alpha"
    qualified: str  # "transfer.logconf.alpha"
    name: str  # the plain key ("alpha") unless another swept key shares it, else `qualified`
    values: tuple


def _label(entry: dict, default: str) -> str:
    return entry["name"] if isinstance(entry.get("name"), str) and entry["name"] else default


def _task_label(entry: dict, index: int) -> str:
    """A [[task]]'s name as the recipe resolves it: its `name`, else its data's name or file stem."""
    data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
    if isinstance(data.get("name"), str):
        return _label(entry, data["name"])
    return _label(entry, PurePath(data["path"]).stem if isinstance(data.get("path"), str) else str(index))


def _tables(raw: dict, path: tuple = (), written: str = "", qual: str = "") -> Iterator[tuple]:
    """(path, written prefix, qualified prefix, table, the keys that sweep there, each key's check)."""
    if isinstance(raw.get("train"), dict):
        yield path + ("train",), f"{written}train.", f"{qual}train.", raw["train"], SWEEPABLE_TRAIN, _train_check
    for section in ("models", "transfer", "bootstrap"):
        entries = raw.get(section)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, dict):
                continue
            where = f"{written}{section}[{i}]."
            if section == "models":
                label = _label(entry, str(i))
                yield path + (section, i), where, f"{qual}models.{label}.", entry, SWEEPABLE_TRAIN, _train_check
                continue
            loss = entry.get("loss", "xent")
            default = loss if section == "transfer" else f"bootstrap-{loss}"
            label = _label(entry, default if isinstance(loss, str) else str(i))
            keys, check = _method_keys(loss)
            yield path + (section, i), where, f"{qual}{section}.{label}.", entry, keys, check
    tasks = raw.get("task") if not path else None
    for j, entry in enumerate(tasks if isinstance(tasks, list) else []):
        if isinstance(entry, dict):
            yield from _tables(entry, ("task", j), f"task[{j}].", f"task.{_task_label(entry, j)}.")


def _train_check(key: str, value: Any) -> str | None:
    expected = TRAIN_KEYS[key](value)
    return f"expected {expected}, got {value!r}" if expected else None


def _method_keys(loss: Any) -> tuple[tuple[str, ...], Callable[[str, Any], str | None]]:
    """A [[transfer]]/[[bootstrap]] table's sweepable keys (its lr, epochs and, for a known loss, the
    loss's parameters) and the check of one value of each."""
    known = isinstance(loss, str) and loss in LOSS_DEFAULTS
    params = (*loss_defaults(loss, {}), *LOSS_CHOICES.get(loss, {})) if known else ()

    def check(key: str, value: Any) -> str | None:
        if key in METHOD_TRAIN_KEYS:
            expected = TRANSFER_KEYS[key](value)
            return f"expected {expected}, got {value!r}" if expected else None
        try:
            resolve_loss(loss, {key: value})
        except InputError as exc:
            return str(exc)
        return None

    return (*METHOD_TRAIN_KEYS, *params), check


def _values(values: list, written: str, check: Callable[[str, Any], str | None], key: str, err: Problems) -> list:
    """The list's good values; each bad one is reported at its index."""
    if not values:
        err.add(written, "an empty list: a grid's list needs at least one value")
    good = []
    for i, value in enumerate(values):
        if not (is_num(value) or isinstance(value, (bool, str))):
            err.add(f"{written}[{i}]", f"a grid's values are numbers, true/false or strings, got {value!r}")
        elif any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in good):  # 1 is not true
            err.add(f"{written}[{i}]", f"{value!r} is already in the list; a grid's values must be distinct")
        elif (problem := check(key, value)) is not None:
            err.add(f"{written}[{i}]", problem)
        else:
            good.append(value)
    return good


def axes_of(raw: dict, err: Problems) -> list[Axis]:
    """Every swept key of a parsed recipe, in the order written; bad values reported (and left out)."""
    found = []
    for path, written, qual, table, keys, check in _tables(raw):
        for key, value in table.items():
            if key in keys and isinstance(value, list):
                values = _values(value, f"{written}{key}", check, key, err)
                found.append((path + (key,), f"{written}{key}", f"{qual}{key}", tuple(values) or (_ABSENT,)))
    plain = [path[-1] for path, *_ in found]
    return [
        Axis(path, written, qual, path[-1] if plain.count(path[-1]) == 1 else qual, values)
        for path, written, qual, values in found
    ]


def point_label(point: dict[str, Any]) -> str:
    """ "lr=1e-05 alpha=0.5": a grid point as problems and the dry run name it."""
    return " ".join(f"{name}={value_text(value)}" for name, value in point.items())


def value_text(value: Any) -> str:
    """A swept value as tables show it: a number as Python writes it back exactly (1e-05, 0.5: two values
    never look the same), a boolean as TOML writes it, a string as written."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _substitute(raw: dict, axes: list[Axis], values: tuple) -> dict:
    point = copy.deepcopy(raw)
    for axis, value in zip(axes, values):
        *where, key = axis.path
        table = point
        for step in where:
            table = table[step]
        if value is _ABSENT:
            del table[key]
        else:
            table[key] = value
    return point


def _merged(problems: list[list[str]], labels: list[str]) -> list[str]:
    """Each point's problems once: as written when every point has it, else naming the points that do."""
    where: dict[str, list[str]] = {}
    for items, label in zip(problems, labels):
        for item in dict.fromkeys(items):
            where.setdefault(item, []).append(label)
    out = []
    for item, labels_with in where.items():
        if len(labels_with) == len(labels):
            out.append(item)
        else:
            shown = "; ".join(labels_with[:3]) + (f"; and {len(labels_with) - 3} more" if len(labels_with) > 3 else "")
            out.append(f"{item} (grid point {shown})")
    return out


def expand(raw: dict, axes: list[Axis], err: Problems, parse: Callable[[dict, Problems], Any]) -> list[tuple]:
    """[(point {name: value}, parse(point's TOML, its problems))] for every grid point, in product order;
    each point's problems merged into `err` (see `_merged`)."""
    size = math.prod(len(a.values) for a in axes)
    if size > MAX_POINTS:
        shape = " × ".join(str(len(a.values)) for a in axes)
        where = ", ".join(a.written for a in axes)
        err.add(where, f"together a grid of {size} points ({shape}), more than {MAX_POINTS}; sweep fewer values")
        err.raise_if_any()
    out, problems, labels = [], [], []
    for values in itertools.product(*(a.values for a in axes)):
        point = {a.name: v for a, v in zip(axes, values) if v is not _ABSENT}
        found = Problems(err.path, err.aliases)
        out.append((point, parse(_substitute(raw, axes, values), found)))
        problems.append(found.items)
        labels.append(point_label(point))
    err.items += _merged(problems, labels)
    return out


def joined(points: list[tuple], axes: list[Axis]) -> Any:
    """The grid as one Recipe: the first point's, with every point in `points` (each with its `grid`
    values) and the swept keys in `axes`. The points share one [launch] dict (it never sweeps), so what
    `w2s run` overrides there reaches every point."""
    first = points[0][1]
    for values, recipe in points:
        recipe.grid = values
        for part in [recipe, *recipe.tasks]:
            part.launch = first.launch
    return replace(first, axes=axes, points=[recipe for _, recipe in points], grid={})


def cost_line(axes: list[Axis], points: int, jobs: int, single: int) -> str:
    """The dry run's line on a grid: its points, and the jobs it plans beyond a single point's `single`."""
    shape = " × ".join(f"{a.name} [{', '.join(value_text(v) for v in a.values)}]" for a in axes)
    return (
        f"grid: {points} points ({shape}): {jobs} jobs, {jobs - single} more than one point's {single} "
        "(a job no swept value changes, such as a GT job under an alpha sweep, is planned once)"
    )


def job_note(roles: list[dict], axes: list[Axis] | None = None) -> str:
    """ " [lr=1e-05]": the swept values a job was planned for, less each key all of whose values share it
    (without `axes`, from the roles alone: each key with one value among them); "" without a grid."""
    found: dict[str, list] = {}
    for role in roles:
        for name, value in role.get("grid", {}).items():
            if value not in found.setdefault(name, []):
                found[name].append(value)
    sizes = {a.name: len(a.values) for a in axes} if axes is not None else {name: 2 for name in found}
    shown = [
        f"{name}={','.join(value_text(v) for v in values)}"
        for name, values in found.items()
        if len(values) < sizes.get(name, 0)
    ]
    return f" [{' '.join(shown)}]" if shown else ""
