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

from w2s_core.jobdir import Result
from w2s_core.spec.plan import Plan
from w2s_core.status import JobStatus
from w2s_core.store import Store, queries

# tokenising a few thousand texts per model takes seconds; a hung hub download must not hang the dry run
COUNT_TIMEOUT_S = 600
_WHAT = "inputs longer than some model's max_length, left out for every model"


def _count(plan: Plan) -> dict:
    """The subprocess's answer: {"seeds": {seed: {split: {"n", "dropped"}}}} or {"error": reason}."""
    request = {
        "data": plan.recipe.data,
        "seeds": plan.recipe.seeds,
        "length_filter": plan.jobs[0].spec["length_filter"],
    }
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
    """What `--dry-run` says about long inputs: the mode, and in drop mode how many go per split."""
    mode = plan.recipe.data.get("long_inputs", "drop")
    if mode != "drop":
        kept = "end" if mode == "truncate_left" else "start"
        return [f'long inputs: cut at each model\'s max_length, keeping their {kept} (long_inputs = "{mode}")']
    if not plan.jobs:
        return []
    answer = _count(plan)
    if "error" in answer:
        return [f"dropped: unknown ({answer['error']})"]
    seeds = answer["seeds"]
    first = next(iter(seeds.values()))
    lines = [f"dropped ({_WHAT}): {_split_counts(first, ('test',))}"]  # the test set is the same for every seed
    lines += [f"  seed {seed}: {_split_counts(counts, ('A', 'B'))}" for seed, counts in seeds.items()]
    return lines


def dropped_in_results(store: Store, recipe_hash: str) -> dict | None:
    """{"test": n, "seeds": {seed: {"A": n, "B": n}}} from the recipe's finished GT jobs; None when no
    job reported any (the truncate modes, or jobs run before the option existed)."""
    test, seeds = None, {}
    for job in queries.recipe_rows(store, recipe_hash):
        res, role = job["results"], job["role"]
        if job["status"] != JobStatus.DONE or Result.n_dropped("test") not in res:
            continue
        test = int(res[Result.n_dropped("test")])  # one test pool: every job of the recipe drops the same
        if role["role"] == "gt":
            seeds[role["seed"]] = {s: int(res[Result.n_dropped(s)]) for s in ("A", "B")}
    return None if test is None else {"test": test, "seeds": dict(sorted(seeds.items()))}


def results_note(name: str, dropped: dict) -> str:
    """One line for `w2s results` under the table."""
    per_seed = "; ".join(f"seed {seed}: A {n['A']}, B {n['B']}" for seed, n in dropped["seeds"].items())
    return f"{name}: dropped ({_WHAT}): test {dropped['test']}" + (f"; {per_seed}" if per_seed else "")
