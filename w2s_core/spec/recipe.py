"""TOML recipes: read, validate against a schema, and resolve into the typed entries the planner expands.

Validation runs before anything trains and reports every problem at once, each naming the file,
the key and what was expected, so a typo costs one edit and not one crashed job. The value checks
and the problem collector live in `checks.py`, the schema tables in `schema.py`, the [[transfer]]/
[[bootstrap]] tables in `methods.py`, the [[prompt]]/[[generative]] stages in `stages.py`; this
module parses.

A suite is a recipe of `[[task]]` tables, each a sub-recipe validated as a recipe (its problems named
`task[i].<key> (task 'name')`): its own `name` (default: its data's name), [task.data], models,
pairs, [[task.transfer]], [[task.bootstrap]], [[task.prompt]], [[task.generative]] and [task.train].
It inherits the suite's [train] (its own keys win), seeds, [launch] and, unless it has its own,
[[transfer]]. A suite's top level holds no data, models, pairs, chains or stages of its own: each
belongs to one task, so nothing is shared by accident between tasks with different data.

A list where a training setting takes one value (`lr = [1e-5, 5e-5]`) makes the recipe a grid
(`grid.py` says which keys sweep and how they are named): each point is parsed as the recipe with its
values, and the Recipe returned is the first point's with every point in `points`.
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

from w2s_core.config import recipe_notify_refusal
from w2s_core.data import DATASETS, kind_problem
from w2s_core.errors import InputError, did_you_mean
from w2s_core.spec import grid, stages
from w2s_core.spec.checks import (
    Problems,
    is_int,
    string,
)
from w2s_core.spec.methods import chains_of, transfers_of
from w2s_core.spec.registry import model_defaults
from w2s_core.spec.schema import (
    ALIASES,
    DATA_DEFAULTS,
    DATA_KEYS,
    LAUNCH_KEYS,
    MODEL_KEYS,
    MODEL_TRAIN_KEYS,
    SELECT,
    SUITE_KEYS,
    TASK_KEYS,
    TOP_KEYS,
    TRAIN_DEFAULTS,
    TRAIN_KEYS,
    Chain,
    GenerativeStage,
    Method,
    ModelEntry,
    PromptStage,
)
from w2s_core.spec.stages import prompt_name


@dataclass
class Recipe:
    """A validated recipe: everything the planner needs, with defaults filled in.

    A suite (`[[task]]` tables) is a recipe of sub-recipes: its `tasks` are full recipes (one
    dataset each, their own models, pairs, stages), sharing the suite's path, text, hash, seeds and
    launch settings; the suite's own data, models, pairs and stages are empty. `parts` is what the
    planner and every consumer iterate: a suite's tasks, or a plain recipe itself.
    """

    path: Path
    name: str
    text: str
    hash: str  # sha256 of the file's text: the store's recipe key
    data: dict
    train: dict
    models: list[ModelEntry]  # ordered weak -> strong; each a full model spec with training settings
    pairs: list[tuple[str, str]]  # the weak side may be a prompting job's name ("gpt2:5-shot")
    transfers: list[Method]
    chains: list[Chain]
    seeds: list[int]
    launch: dict = field(default_factory=dict)
    prompts: list[PromptStage] = field(default_factory=list)
    generative: dict[str, GenerativeStage] = field(default_factory=dict)  # by model name
    tasks: list[Recipe] = field(default_factory=list)  # a suite's sub-recipes
    task: str = ""  # a part's task name: the [[task]]'s name, or the data's name for a plain recipe
    # A grid (list values, spec/grid.py): its swept keys, and each point as a recipe of its own with its
    # values in `grid` ({name: value}); none of them for a recipe without lists.
    axes: list[grid.Axis] = field(default_factory=list)
    points: list[Recipe] = field(default_factory=list)
    grid: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> ModelEntry:
        return next(m for m in self.models if m["name"] == name)

    @property
    def is_suite(self) -> bool:
        return bool(self.tasks)

    @property
    def grid_points(self) -> list[Recipe]:
        """The recipes to plan, one per grid point: each point of a grid, or this recipe alone."""
        return self.points or [self]

    @property
    def swept(self) -> list[str]:
        """The names of the keys a grid sweeps ("lr", "transfer.logconf.alpha"); [] without a grid."""
        return [a.name for a in self.axes]

    @property
    def parts(self) -> list[Recipe]:
        """The sub-recipes to plan, check and prefetch: a suite's tasks, or this recipe alone."""
        return self.tasks or [self]

    def prompt_jobs(self) -> dict[str, tuple[str, int]]:
        """{"<model>:<k>-shot": (model, k)} for every prompting job of this part."""
        return {prompt_name(m, k): (m, k) for p in self.prompts for m in p["models"] for k in p["shots"]}


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
    """Validate a parsed recipe (`path` resolves its relative paths and names it in errors); a grid's
    every point, each as the recipe with its values."""
    if "notify" in raw:  # issue 13: a recipe never runs commands; the user's own config does (w2s_core.config)
        raise InputError(recipe_notify_refusal(path, str(raw.get("name") or path.stem), raw["notify"]))
    err = Problems(path, ALIASES)
    axes = grid.axes_of(raw, err)
    if not axes:
        recipe = _parse(raw, path, text, err)
        err.raise_if_any()
        return recipe
    points = grid.expand(raw, axes, err, lambda point, found: _parse(point, path, text, found))
    err.raise_if_any()
    return grid.joined(points, axes)


def _parse(raw: dict, path: Path, text: str, err: Problems) -> Recipe:
    """One recipe (or grid point), its problems left in `err` for the caller to raise."""
    suite = "task" in raw
    for key in raw:
        if key not in TOP_KEYS:
            err.unknown("", key, TOP_KEYS)
        elif suite and key not in SUITE_KEYS:
            err.add(key, f"a suite ([[task]] tables) sets `{key}` in each [[task]], not at its top level")
    for key in ("data", "train", "launch"):
        if key in raw and not isinstance(raw[key], dict):
            err.add(key, f"expected a table [{key}], got {raw[key]!r}")
    train = _table(raw, "train")
    err.check_table("train.", train, TRAIN_KEYS)
    for key in ("name", "description"):
        if key in raw and string(raw[key]):
            err.add(key, f"expected a non-empty string, got {raw[key]!r}")
    common = {
        "path": path,
        "text": text,
        "hash": hashlib.sha256(text.encode()).hexdigest(),
        "seeds": _seeds(raw.get("seeds", [0]), err),
        "launch": _launch(_table(raw, "launch"), path, err),
    }
    name = raw.get("name") or path.stem
    if suite:
        tasks = _tasks(raw, train, common, err)
        suite_train = {**TRAIN_DEFAULTS, **train}
        return Recipe(name=name, data={}, train=suite_train, models=[], pairs=[], transfers=[], chains=[],
                      tasks=tasks, task=name, **common)  # fmt: skip
    part = _part(raw, train, path, err, transfers_of(raw.get("transfer"), err))
    return Recipe(name=name, **common, **part)


def _part(raw: dict, train: dict, path: Path, err: Problems, transfers: list[Method]) -> dict[str, Any]:
    """One dataset's sub-recipe (a plain recipe, or a suite's [[task]]) as Recipe fields."""
    data = _data(_table(raw, "data"), path, err, "data" in raw)
    models = _models(raw.get("models"), train, err)
    _selection(data, train, models, err)
    _kind_checks(data, train, models, err)
    by_name = {m["name"]: m for m in models}
    prompts = stages.prompts(raw.get("prompt"), by_name, data, err)
    if prompts and data.get("kind", "classify") != "classify":
        err.add("prompt", f"prompting scores per-class label words: it needs a classify task, not {data['kind']!r}")
    names = list(by_name)
    weak_names = names + [prompt_name(m, k) for p in prompts for m in p["models"] for k in p["shots"]]
    pairs = _pairs(raw.get("pairs"), names, err, weak_names)
    chains = chains_of(raw.get("bootstrap"), names, err)
    if not pairs and not chains and not prompts and 0 < len(models) < 2 and "models" in raw:
        err.add("models", "expected at least two models (a weak and a strong one), or a [[bootstrap]] chain")
    return {
        "data": data,
        "train": {**TRAIN_DEFAULTS, **train},
        "models": models,
        "pairs": pairs,
        "transfers": transfers,
        "chains": chains,
        "prompts": prompts,
        "generative": stages.generative(raw.get("generative"), by_name, path, err),
        "task": data_name(data),
    }


def data_name(data: dict) -> str:
    """What a part is called when it has no name of its own: the dataset's name, or its file's stem."""
    if isinstance(data.get("name"), str):
        return data["name"]
    return Path(data["path"]).stem if isinstance(data.get("path"), str) else "data"


def _tasks(raw: dict, train: dict, common: dict, err: Problems) -> list[Recipe]:
    """A suite's [[task]] tables, each validated as a recipe with its keys named `task[i].<key>`.
    Each inherits the suite's [train] (its own [task.train] keys win), seeds, launch and, unless it
    has its own, the suite's [[transfer]] methods."""
    value = raw["task"]
    if not (isinstance(value, list) and value and all(isinstance(t, dict) for t in value)):
        err.add(
            "task", f"expected [[task]] tables, each a sub-recipe with its own [task.data] and models, got {value!r}"
        )
        return []
    transfers = transfers_of(raw.get("transfer"), err)
    tasks = []
    for i, entry in enumerate(value):
        label = f" (task {entry['name']!r})" if isinstance(entry.get("name"), str) else ""
        sub = err.child(f"task[{i}].", label)
        for key in entry:
            if key in ("seeds", "launch"):
                sub.add(key, f"`{key}` is the suite's: set it at the top level, not in a [[task]]")
            elif key not in TASK_KEYS:
                sub.unknown("", key, TASK_KEYS)
            elif key in ("name", "description") and string(entry[key]):
                sub.add(key, f"expected a non-empty string, got {entry[key]!r}")
        own_train = _table(entry, "train")
        sub.check_table("train.", own_train, TRAIN_KEYS)
        own = transfers_of(entry["transfer"], sub) if "transfer" in entry else transfers
        part = _part(entry, {**train, **own_train}, common["path"], sub, own)
        name = entry.get("name") if isinstance(entry.get("name"), str) else part["task"]
        tasks.append(Recipe(name=name, **common, **{**part, "task": name}))
    names = [t.name for t in tasks]
    for name in {n for n in names if names.count(n) > 1}:
        err.add("task", f"two tasks are named {name!r} (a task is named after its data unless it has a `name`); "
                        "give each [[task]] a distinct `name`")  # fmt: skip
    return tasks


def _kind_checks(data: dict, train: dict, models: list[ModelEntry], err: Problems) -> None:
    """What the data's kind asks of the models: chess is scored by a causal LM, finetuned."""
    problem = kind_problem(data) if data else None
    if problem:
        err.add("data.kind", problem)
    if data.get("kind") != "chess":
        return
    for m in models:
        if stages.is_encoder(m):
            err.add(
                f"models.{m['name']}",
                f"a chess task scores each legal move as a continuation of the position, which needs a causal "
                f"language model; {m['path']!r} is an encoder (its registry entry or `arch` says so)",
            )
        if m.get("mode", train.get("mode")) == "probe":
            err.add(
                f"models.{m['name']}.mode", "a chess task is finetuned: probe mode has no move scorer; use 'finetune'"
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
        path = entry.get("path", entry["name"])
        spec = model_defaults(path if isinstance(path, str) else entry["name"])  # a bad path: reported above
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
        elif t["select"] == "val_auroc" and data.get("kind") == "chess":
            found[where["select"]] = (
                "'val_auroc' cannot rank chess checkpoints: AUROC is undefined over per-position legal moves; "
                "use select = 'val_loss' or 'final'"
            )
        elif t["select"] != "final" and not t["eval_every"]:
            found[where["eval_every"]] = (
                f"select = {t['select']!r} chooses between eval points, but eval_every is 0: "
                "set eval_every (e.g. 25, as EleutherAI/w2s), the steps between them"
            )
    for key, msg in found.items():
        err.add(key, msg)


def _pairs(value: Any, names: list[str], err: Problems, weak_names: list[str]) -> list[tuple[str, str]]:
    """Explicit pairs may repeat a model (["m", "m"]: m trained on its own GT job's labels, as EleutherAI/w2s
    runs strong->strong); its PGR is undefined (ceiling == weak) and the analysis shows it as n/a. The
    weak side may be a [[prompt]] job's name ("gpt2:0-shot": the prompted model labels half B)."""
    if value is None:  # every weak < strong pair, in the recipe's order
        return [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    if not isinstance(value, list):
        err.add("pairs", f"expected a list of [weak, strong] pairs, got {value!r}")
        return []
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2):
            err.add(f"pairs[{i}]", f"expected [weak, strong], got {pair!r}")
        elif err.known(pair[0], weak_names, f"pairs[{i}]") and (
            pair[1] == pair[0] in names  # a self-pair's unknown model is reported once
            or err.known(pair[1], names, f"pairs[{i}]")  # the strong side trains: a model, never a prompt
        ):
            pairs.append((pair[0], pair[1]))
    return pairs
