"""The optional W&B mirror (`w2s export --wandb`): every job of the recipes as one W&B run.

A run's id is the job's hash, so exporting again updates the same run instead of adding another
(`resume="allow"`); its name is the short hash and the job's role, its group the recipe's name, its
config the job's spec with the recipe's name and hash, its tags the job's and its recipes' tags, its
notes its run's notes, its history the job's event stream by step, its summary the final results.

W&B reads its own settings from the environment: `WANDB_MODE=offline` writes the runs under
`WANDB_DIR` for a later `wandb sync`, and nothing leaves the machine. `wandb` is an optional extra
(`pip install 'w2s[wandb]'`), imported only inside `mirror_to_wandb`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from w2s_core.analysis.export import collect_jobs, note_map, tag_map
from w2s_core.errors import InputError

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import MetricRow

__all__ = ["mirror_to_wandb", "role_text", "steps"]


def role_text(job: dict) -> str:
    """What a job is for, in a few words: "gt m-small s0", "m-small>m-big xent s0", "boot 2/2 s1"."""
    role = job.get("role") or {}
    seed = f"s{job['seed']}"
    if role.get("role") == "transfer":
        return f"{role['weak']}>{role['strong']} {role['method']} {seed}"
    if role.get("role") == "bootstrap":
        return f"boot {role['step']}/{len(role['chain']) - 1} {role['method']} {seed}"
    if role.get("role") == "prompt":
        return f"{role['model']} {seed}"
    return f"{job['kind']} {job['model']} {seed}"


def steps(metrics: list[MetricRow]) -> Iterator[tuple[int, dict[str, float]]]:
    """The event stream as (step, {metric: value}), one per events line, steps never going back (W&B
    drops a step lower than the last): a line without a step, or a lower one (a resumed job writing its
    last steps again), counts as the latest step. NaN values are left out."""
    lines: dict[int, dict[str, float]] = defaultdict(dict)
    line_step: dict[int, int | None] = {}
    for m in metrics:
        if not math.isnan(m["value"]):
            lines[m["seq"]][m["key"]] = m["value"]
        line_step.setdefault(m["seq"], m["step"])
    last = 0
    for seq in sorted(lines):
        step = line_step[seq]
        last = max(last, step if step is not None else last)
        yield last, lines[seq]


def _config(job: dict) -> dict[str, Any]:
    return {
        "recipe": job["recipe"],
        "recipe_hash": job["recipe_hash"],
        "recipes": job["recipes"],
        "job_hash": job["hash"],
        "kind": job["kind"],
        "model": job["model"],
        "weak_model": job["weak_model"],
        "loss": job["loss"],
        "seed": job["seed"],
        "role": job["role"],
        "spec": job["spec"],
    }


def _log_job(wandb, store: Store, job: dict, project: str, tags: list[str], notes: str | None) -> None:
    run = wandb.init(
        project=project,
        id=job["hash"],
        name=f"{job['hash'][:10]} {role_text(job)}",
        group=job["recipe"],
        job_type=job["kind"],
        config=_config(job),
        tags=tags,  # stored tags: at most 64 characters each (store.annotations.check_tag), as W&B requires
        notes=notes,
        resume="allow",
        reinit="create_new",  # one run after another, never the caller's own run
        settings=wandb.Settings(console="off", save_code=False, x_disable_stats=True),
    )
    try:
        first = run.step if getattr(run, "resumed", False) else 0  # already logged before: not again
        for step, values in steps(store.metrics(job["hash"])):
            if step >= first:
                run.log(values, step=step)
        run.summary.update({**{k: v for k, v in job["results"].items() if not math.isnan(v)}, "status": job["status"]})
    finally:
        run.finish()


def mirror_to_wandb(store: Store, recipe_hashes: list[str], project: str = "w2s") -> int:
    """Log every job of the recipes as a W&B run in `project` (see the module docstring); returns how
    many. InputError when the wandb package is not installed."""
    try:
        import wandb
    except ImportError:
        raise InputError("w2s export --wandb needs the wandb package: pip install 'w2s[wandb]'") from None
    recipe_tags, run_tags, notes = tag_map(store, "recipe"), tag_map(store, "run"), note_map(store)
    jobs = collect_jobs(store, recipe_hashes)
    for job in jobs:
        run_id = job["run_id"]
        tags = [
            *job["tags"],
            *[t for h in job["recipe_hashes"] for t in recipe_tags.get(h, [])],
            *(run_tags.get(str(run_id), []) if run_id is not None else []),
        ]
        _log_job(wandb, store, job, project, list(dict.fromkeys(tags)), "\n".join(notes.get(run_id, [])) or None)
    return len(jobs)
