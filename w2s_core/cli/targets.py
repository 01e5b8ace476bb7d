"""What the user named on the command line, resolved against a results database.

`w2s cancel TARGET` and `w2s retry TARGET` take a job hash prefix, a run id, or a recipe file or
name; `w2s results RECIPE` (and plot, export, follow, tag) a recipe file or name. Every miss says
what would have matched and which command lists the candidates.

A recipe is found by, in order (`recipe_matches`): the file's content (that exact version); the file's
path (a file edited since it ran, or a relative path typed from another folder: every version run
from that file); the recipe's name (as written, without `.toml`, or the name inside the file); and
last the name of the file it was run from (`demo` for `recipes/demo.toml` named "paper-demo").
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from w2s_core.errors import InputError
from w2s_core.spec.recipe import load_recipe
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.store.rows import RecipeRow
from w2s_core.supervision.upstream import upstream_hashes

HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 4  # shorter hex strings are more likely run ids or names than hash prefixes


def ordered(statuses: Collection[JobStatus]) -> tuple[JobStatus, ...]:
    """A status set in the enum's order, so messages read the same every time ("queued or running")."""
    return tuple(s for s in JobStatus if s in statuses)


def _looks_like_hash(target: str) -> bool:
    return len(target) >= MIN_PREFIX and set(target.lower()) <= HEX


def _loaded(path: Path):
    """The recipe in `path`, or None when it is no file or no longer a valid recipe (edited since)."""
    if not path.is_file():
        return None
    try:
        return load_recipe(path)
    except InputError:
        return None


def _same_file(stored: str | None, target: Path) -> bool:
    """Whether a recipe recorded from file `stored` was run from the file `target` names: the same file
    once resolved, or (a relative path typed elsewhere, `recipes/demo.toml`) a stored path ending in it."""
    if not stored:
        return False
    stored_path = Path(stored).expanduser()
    if stored_path.resolve() == target.expanduser().resolve():
        return True
    parts = target.parts
    return not target.is_absolute() and ".." not in parts and stored_path.parts[-len(parts) :] == parts


def recipe_matches(store: Store, target: str) -> list[list[RecipeRow]]:
    """The recorded recipes `target` names, as four tiers from the surest to the loosest (see the
    module docstring: by content, by file path, by name, by the file's name), each oldest first and
    empty where nothing matched. InputError listing the known names when no tier matched."""
    path = Path(target)
    recipes = store.recipes()
    loaded = _loaded(path)
    pathlike = loaded is not None or path.suffix == ".toml" or len(path.parts) > 1
    names = {target, path.stem} | ({loaded.name} if loaded is not None else set())
    tiers = [
        [r for r in recipes if loaded is not None and r["hash"] == loaded.hash],
        [r for r in recipes if pathlike and _same_file(r["path"], path)],
        [r for r in recipes if r["name"] in names],
        [r for r in recipes if r["path"] and Path(r["path"]).stem == path.stem],
    ]
    if not any(tiers):
        known = sorted({r["name"] for r in recipes})
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        raise InputError(
            f"{target!r} names no recipe recorded in {store.path} (by file content, file path or name); "
            + (f"known recipes: {listed}" if known else "it holds no recipe yet")
        )
    return tiers


def _recipe_jobs(store: Store, target: str) -> list[dict]:
    """Jobs of the recipes named by `target` (a recipe file or name): every version the surer tiers
    matched (the name's fallback, the file it ran from, only when nothing else did)."""
    try:
        tiers = recipe_matches(store, target)
    except InputError as exc:
        raise InputError(
            f"{target!r} is not a job hash prefix, a run id or a recipe name/file known to "
            f"{store.path}; `w2s queue` and `w2s runs` list them. {exc}"
        ) from None
    picked = {r["hash"] for tier in tiers[:3] for r in tier} or {r["hash"] for r in tiers[3]}
    return [j for h in sorted(picked) for j in store.jobs(recipe_hash=h)]


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
    """The recipes `w2s results` (plot, export, follow) reports: all, the one named (file or name: the
    surest match, its latest version), or the latest run's."""
    recipes = store.recipes()
    if every:
        return [r["hash"] for r in recipes]
    if recipe:
        try:
            best = next(tier for tier in recipe_matches(store, recipe) if tier)
        except InputError as exc:
            raise InputError(f"no results for recipe {recipe!r}: {exc}; run it first with `w2s run {recipe}`") from None
        return [max(best, key=lambda r: (r["created_at"], r["hash"]))["hash"]]
    runs = store.runs()
    if not runs:
        raise InputError(f"{store.path} holds no runs yet; start one with `w2s run RECIPE`")
    return [max(runs, key=lambda r: r["id"])["recipe_hash"]]


def annotation_targets(store: Store, target: str) -> tuple[str, list[str], str]:
    """What `w2s tag/untag TARGET` labels: (kind, ids, how to name it). A run id (digits naming a run), a
    job hash prefix (>= 4 hex, unique), or a recipe: a file recorded by its content (that version), else
    every recorded version of the name (`lr-sweep`, or a file's stem)."""
    if target.isdigit() and any(r["id"] == int(target) for r in store.runs()):
        return "run", [target], f"run {target}"
    if _looks_like_hash(target):
        jobs = store.job_hashes(target.lower())
        if len(jobs) > 1:
            raise InputError(f"{target!r} matches {len(jobs)} jobs in {store.path}; give a longer hash prefix")
        if jobs:
            return "job", jobs, f"job {jobs[0][:10]}"
    try:  # the surest tier: that version by content, else every version run from the file, or named so
        chosen = next(tier for tier in recipe_matches(store, target) if tier)
    except InputError as exc:
        raise InputError(
            f"{target!r} is not a run id, a job hash prefix or a recipe file or name known to {store.path}; "
            f"`w2s runs` lists runs and their recipes, `w2s queue` and `w2s show RUN` jobs. {exc}"
        ) from None
    versions = f" ({len(chosen)} versions)" if len(chosen) > 1 else ""
    return "recipe", [r["hash"] for r in chosen], f"recipe {chosen[-1]['name']}{versions}"
