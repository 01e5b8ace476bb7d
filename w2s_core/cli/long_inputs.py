"""How many long inputs a recipe drops (`[data] long_inputs = "drop"`): in `w2s run --dry-run` and `w2s results`.

The dry run counts before anything trains, which needs the models' tokenizers: the CLI never
imports transformers, so a subprocess (`python -m w2s_core.training.lengths`, sharing the jobs'
token-count cache) counts and prints JSON. Like the rest of the dry run it never downloads: it reads
the Hugging Face caches only (`w2s prefetch` fills them), and when it cannot count (a tokenizer or
dataset not there, a broken model, a timeout) it says "dropped: unknown (<reason>)" and goes on. `w2s results`
reads the figures the jobs reported in result.json (`n_dropped_<split>`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from w2s_core.data.cache import dataset_in_cache
from w2s_core.data.hub import HUB_SOURCES
from w2s_core.data.registry import source
from w2s_core.jobdir import Result
from w2s_core.spec.plan import Plan, length_filter
from w2s_core.spec.recipe import Recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store, queries

# tokenising a few thousand texts per model takes seconds; a hung hub download must not hang the dry run
COUNT_TIMEOUT_S = 600
_WHAT = "inputs longer than some model's max_length, left out for every model"


def _count(part: Recipe, seeds: list[int]) -> dict:
    """The subprocess's answer: {"seeds": {seed: {split: {"n", "dropped"}}}} or {"error": reason}."""
    request = {"data": part.data, "seeds": seeds, "length_filter": length_filter(part)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "w2s_core.training.lengths"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=COUNT_TIMEOUT_S,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"counting took over {COUNT_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"the counting process exited with {done.returncode}"}


def _split_counts(counts: dict, names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {counts[name]['dropped']} of {counts[name]['n']}" for name in names)


def dry_run_lines(plan: Plan) -> list[str]:
    """What `--dry-run` says about long inputs, per part (a suite's task): the mode, and in drop mode
    how many go per split."""
    recipe = plan.recipe
    if not plan.jobs:
        return []
    lines = []
    for part in recipe.parts:
        task = f"task {part.name}: " if recipe.is_suite else ""
        lines += [task + line if i == 0 else line for i, line in enumerate(_part_lines(part, recipe.seeds))]
    return lines


def not_downloaded(part: Recipe) -> str | None:
    """Why the dry run cannot read `part`'s data (a Hub dataset not in the caches yet), else None."""
    name, info = source(part.data)
    hub = HUB_SOURCES.get(name) if info is not None else None
    if hub is None or dataset_in_cache(hub.hub_id):
        return None
    return f"{name} ({hub.hub_id}) is not downloaded yet (`w2s prefetch` fetches it)"


def _part_lines(part: Recipe, seeds: list[int]) -> list[str]:
    mode = part.data.get("long_inputs", "drop")
    if mode != "drop":
        kept = "end" if mode == "truncate_left" else "start"
        return [f'long inputs: cut at each model\'s max_length, keeping their {kept} (long_inputs = "{mode}")']
    missing = not_downloaded(part)
    answer = {"error": missing} if missing else _count(part, seeds)
    if "error" in answer:
        return [f"dropped: unknown ({answer['error']})"]
    by_seed = answer["seeds"]
    first = next(iter(by_seed.values()))
    lines = [f"dropped ({_WHAT}): {_split_counts(first, ('test',))}"]  # the test set is the same for every seed
    lines += [f"  seed {seed}: {_split_counts(counts, ('A', 'B'))}" for seed, counts in by_seed.items()]
    return lines


def dropped_in_results(store: Store, recipe_hash: str) -> dict | None:
    """{"test": n, "seeds": {seed: {"A": n, "B": n}}} from the recipe's finished GT jobs; None when no
    job reported any (the truncate modes, or jobs run before the option existed). A suite's: {"tasks":
    {task: that dict}}, each task having its own test pool."""
    tasks: dict[str | None, dict] = {}
    for job in queries.recipe_rows(store, recipe_hash):
        res, role = job["results"], job["role"]
        if job["status"] != JobStatus.DONE or Result.n_dropped("test") not in res:
            continue
        found = tasks.setdefault(role.get("task"), {"test": None, "seeds": {}})
        found["test"] = int(res[Result.n_dropped("test")])  # one test pool: every job of a task drops the same
        if role["role"] == "gt":
            found["seeds"][role["seed"]] = {s: int(res[Result.n_dropped(s)]) for s in ("A", "B")}
    for found in tasks.values():
        found["seeds"] = dict(sorted(found["seeds"].items()))
    if not tasks:
        return None
    return tasks[None] if None in tasks else {"tasks": tasks}


def results_note(name: str, dropped: dict) -> str:
    """One line for `w2s results` under the table (a suite: a line per task)."""
    if "tasks" in dropped:
        return "\n".join(results_note(f"{name}/{task}", found) for task, found in dropped["tasks"].items())
    per_seed = "; ".join(f"seed {seed}: A {n['A']}, B {n['B']}" for seed, n in dropped["seeds"].items())
    return f"{name}: dropped ({_WHAT}): test {dropped['test']}" + (f"; {per_seed}" if per_seed else "")
