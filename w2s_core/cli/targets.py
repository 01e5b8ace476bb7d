"""What the user named on the command line, resolved against a results database.

`w2s cancel TARGET` and `w2s retry TARGET` take a job hash prefix, a run id, or a recipe file or
name; `w2s results RECIPE` a recipe file or name. Every miss says what would have matched and
which command lists the candidates.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from w2s_core.errors import InputError
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision.upstream import upstream_hashes

HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 4  # shorter hex strings are more likely run ids or names than hash prefixes


def ordered(statuses: Collection[JobStatus]) -> tuple[JobStatus, ...]:
    """A status set in the enum's order, so messages read the same every time ("queued or running")."""
    return tuple(s for s in JobStatus if s in statuses)


def _looks_like_hash(target: str) -> bool:
    return len(target) >= MIN_PREFIX and set(target.lower()) <= HEX


def _recipe_jobs(store: Store, target: str) -> list[dict]:
    """Jobs of the recipes named by `target`: a recipe file (matched by content) or a recipe name."""
    path = Path(target)
    wanted = load_recipe(path).hash if path.is_file() else None
    names = {r["hash"] for r in store.recipes() if r["hash"] == wanted or r["name"] in (target, path.stem)}
    if not names:
        raise InputError(
            f"{target!r} is not a job hash prefix, a run id or a recipe name/file known to "
            f"{store.path}; `w2s queue` and `w2s runs` list them"
        )
    return [j for h in sorted(names) for j in store.jobs(recipe_hash=h)]


def select_jobs(store: Store, target: str | None, statuses: Collection[JobStatus], what: str) -> list[dict]:
    """Jobs named by TARGET (a job hash prefix, a run id, a recipe file or name; all when None) in `statuses`."""
    jobs = store.jobs()
    prefix = (target or "").lower()
    if target is None:
        chosen = jobs
    elif target.isdigit() and any(j["run_id"] == int(target) for j in jobs):
        chosen = [j for j in jobs if j["run_id"] == int(target)]
    elif _looks_like_hash(target) and any(j["hash"].startswith(prefix) for j in jobs):
        chosen = [j for j in jobs if j["hash"].startswith(prefix)]
        if len(chosen) > 1:
            raise InputError(f"{target!r} matches {len(chosen)} jobs in {store.path}; give a longer hash prefix")
    else:
        chosen = _recipe_jobs(store, target)
    picked = [j for j in chosen if j["status"] in statuses]
    if not picked:
        scope = f"{target!r}" if target else store.path
        names = " or ".join(ordered(statuses))
        raise InputError(f"Nothing to {what}: {scope} has no job that is {names}.")
    return picked


def with_blocked_downstream(store: Store, job_hashes: set[str], statuses: Collection[JobStatus]) -> set[str]:
    """`job_hashes` plus every job in `statuses` downstream of them (by labels or by a generative
    stage), so retrying a failed job also retries the chain steps and stage users its failure skipped."""
    found = set(job_hashes)
    candidates = store.jobs(status=ordered(statuses))
    grew = True
    while grew:
        down = [
            j["hash"]
            for j in candidates
            if j["hash"] not in found and any(u in found for u in upstream_hashes(j["spec"]))
        ]
        found.update(down)
        grew = bool(down)
    return found


def recipe_hashes(store: Store, recipe: str | None, every: bool) -> list[str]:
    """The recipes `w2s results` reports: all, the one named (file or name; its latest version), or
    the latest run's."""
    recipes = store.recipes()
    if every:
        return [r["hash"] for r in recipes]
    if recipe:
        path = Path(recipe)
        if path.is_file():
            wanted = load_recipe(path).hash
            if any(r["hash"] == wanted for r in recipes):
                return [wanted]
        by_name = [r for r in recipes if r["name"] in (recipe, path.stem)]
        if not by_name:
            raise InputError(f"no results for recipe {recipe!r} in {store.path}; run it first with `w2s run {recipe}`")
        return [max(by_name, key=lambda r: r["created_at"])["hash"]]
    runs = store.runs()
    if not runs:
        raise InputError(f"{store.path} holds no runs yet; start one with `w2s run RECIPE`")
    return [max(runs, key=lambda r: r["id"])["recipe_hash"]]
