"""The PGR table: weak, w2s and ceiling results per (task, weak, strong, method), aggregated over seeds.

Rows are transfers, bootstrap chains (by their last step) and prompting baselines (`kind = "prompt"`:
weak = the [[prompt]] table's weak model's GT job, w2s = the prompting job, ceiling = the prompted
model's finetuned GT job, method "<k>-shot": how much of the finetuning gap prompting closes). A
transfer whose weak side is a prompting job ("gpt2:5-shot") takes that job's results as its weak
figure. Every row names its `task` (a suite's task, or the data's name), the data's kind, and whether
its strong model's jobs started from a generative stage (`generative`).

Each row carries both PGR estimators (`estimators.py`: ours, the mean of per-seed PGR with a 95%
interval; the paper's, the median against seed-averaged models) and the final, selected and oracle
figures of every role (`figures.py`). `pgr_summary` gives the paper's per-method figure;
`pgr_results`, the table and the summary from one computation.

A grid recipe (list values, `w2s_core.spec.grid`) has a row per grid point: each row carries `grid`,
its point's {swept key: value} ({} without a grid), and a column of the same name per swept key, and
is computed from that point's jobs alone (its weak and ceiling too: a GT job two points share serves
both). `pgr_table(..., by=KEY)` pivots by one swept key (`pivot.py`: the best point per value).

Built from the store alone (roles recorded at planning, results recorded at ingest), so the CLI and
the TUI show the same numbers, and a results directory can be browsed without its recipes. The
rows come from `w2s_core.store.queries.recipe_rows`; this module reads roles, never SQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from w2s_core.analysis import estimators, pivot, stats
from w2s_core.analysis.figures import FIGURES, METRICS, figure
from w2s_core.jobdir import Result
from w2s_core.status import JobStatus
from w2s_core.store import queries

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import PlannedJob, Role

__all__ = ["chain_steps", "grid_keys", "pgr_results", "pgr_summary", "pgr_table", "task_of"]

# A grid point as a hashable key: its (swept key, value) pairs, sorted; () without a grid.
Point = tuple[tuple[str, Any], ...]
# (task, grid point, kind, weak, strong, method, chain or None): one table row
GroupKey = tuple[str | None, Point, str, str, str, str, tuple[str, ...] | None]
ROLES = ("weak", "w2s", "ceiling")
KIND_ORDER = {"transfer": 0, "bootstrap": 1, "prompt": 2}  # the table's order of row kinds


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def point_of(role: Role) -> Point:
    """The grid point a role was planned for (roles of a recipe without lists have none)."""
    return tuple(sorted(role.get("grid", {}).items()))  # type: ignore[attr-defined]


def grid_keys(store: Store, recipe_hash: str) -> list[str]:
    """The keys the recipe's grid sweeps (as its roles name them), [] for a recipe without lists."""
    return pivot.swept([job["role"] for job in queries.recipe_rows(store, recipe_hash)])  # type: ignore[arg-type]


def task_of(job: PlannedJob) -> str | None:
    """A job's task: its suite task's name, else its data's name (a local file: the file's stem)."""
    task = job["role"].get("task")
    if task is not None or job.get("dataset") is None:
        return task
    dataset = str(job["dataset"])
    return PurePath(dataset).stem if "/" in dataset or "\\" in dataset else dataset


@dataclass
class _Collected:
    """A recipe's finished results, sorted into GT results and transfer/bootstrap/prompt groups, by task."""

    # (task, point, model, seed) -> results; a prompting job's too, by its name ("gpt2:0-shot"): a weak supervisor
    gt: dict[tuple[str | None, Point, str, int], dict] = field(default_factory=dict)
    order: dict[tuple[str | None, str], int] = field(default_factory=dict)  # models in recipe order, per task
    tasks: dict[str | None, int] = field(default_factory=dict)  # tasks in recipe order
    points: dict[Point, int] = field(default_factory=dict)  # grid points in planning order
    hashes: dict[tuple, str] = field(default_factory=dict)  # the job behind each gt key and (group, seed)
    groups: dict[GroupKey, dict[int, tuple[Role, dict]]] = field(default_factory=lambda: defaultdict(dict))
    n_test: dict[str | None, int] = field(default_factory=dict)  # per task: each has its own test set
    chance: dict[str | None, float] = field(default_factory=dict)  # per task: a uniform guess's accuracy
    data_kind: dict[str | None, str] = field(default_factory=dict)
    staged: set[tuple[str | None, str]] = field(default_factory=set)  # (task, model) started from a stage


def _collect(planned: list[PlannedJob], key: str) -> _Collected:
    out = _Collected()
    for job in planned:
        role, res, task = job["role"], job["results"], task_of(job)
        out.tasks.setdefault(task, len(out.tasks))
        out.points.setdefault(point_of(role), len(out.points))
        out.data_kind.setdefault(task, job.get("data_kind") or "classify")
        if role["role"] == "gt":
            out.order.setdefault((task, role["model"]), len(out.order))
        if job.get("init") and role["role"] in ("gt", "transfer", "bootstrap"):
            out.staged.add((task, job_model(role)))
        if job["status"] != JobStatus.DONE or key not in res:
            continue
        _add_result(out, task, role, res, job["job_hash"])
        if Result.N_TEST in res:
            out.n_test[task] = int(res[Result.N_TEST])
        if Result.CHANCE_ACC in res:
            out.chance[task] = float(res[Result.CHANCE_ACC])
    return out


def job_model(role: Role) -> str:
    """The model a trained job's role is about: a GT job's model, a transfer's strong model, a chain step's."""
    if role["role"] == "bootstrap":
        return role["chain"][role["step"]]
    return role["strong"] if role["role"] == "transfer" else role["model"]


def _add_result(out: _Collected, task: str | None, role: Role, res: dict, job_hash: str) -> None:
    point, seed = point_of(role), role["seed"]
    group: GroupKey | None = None
    if role["role"] in ("gt", "prompt"):  # a prompting job is also the weak figure of a transfer it supervises
        out.gt[(task, point, role["model"], seed)] = res
        out.hashes[(task, point, role["model"], seed)] = job_hash
    if role["role"] == "prompt":
        group = (task, point, "prompt", role["weak"], role["base"], f"{role['shots']}-shot", None)
    elif role["role"] == "transfer":
        group = (task, point, "transfer", role["weak"], role["strong"], role["method"], None)
    elif role["role"] == "bootstrap":
        chain = tuple(role["chain"])
        group = (task, point, "bootstrap", chain[0], chain[-1], role["method"], chain)
        prev = out.groups[group].get(seed)
        if prev is not None and prev[0]["step"] >= role["step"]:  # a chain's row uses its last step
            return
    if group is not None:
        out.groups[group][seed] = (role, res)
        out.hashes[(group, seed)] = job_hash


def _finished(group: GroupKey, by_seed: dict[int, tuple[Role, dict]]) -> dict[int, dict]:
    """{seed: results} of the group's runs that reached the end (a chain: its last model)."""
    chain = group[6]
    return {seed: res for seed, (role, res) in sorted(by_seed.items()) if not chain or role["step"] == len(chain) - 1}


def _seed_entry(seed: int, weak: dict, w2s: dict, ceiling: dict, metric: str) -> dict[str, Any]:
    """One seed's figures and PGR; the unsuffixed keys are the selected figures, then _final, _oracle."""
    entry: dict[str, Any] = {"seed": seed}
    for which in ("selected", "final", "oracle"):
        w, s, c = (figure(res, metric, which) for res in (weak, w2s, ceiling))
        suffix = "" if which == "selected" else f"_{which}"
        entry.update({f"weak{suffix}": w, f"w2s{suffix}": s, f"ceiling{suffix}": c, f"pgr{suffix}": stats.pgr(w, s, c)})
    entry.update(agree=w2s.get("agree"), agree_weak_wrong=w2s.get("agree_weak_wrong"))
    return entry


def _per_seed(group: GroupKey, runs: dict[int, dict], gt: dict, metric: str) -> list[dict[str, Any]]:
    """Each seed whose weak and strong GT jobs (or weak prompting job) are done, with its own weak, w2s
    and ceiling."""
    task, point, _, weak, strong, _, _ = group
    return [
        _seed_entry(seed, gt[(task, point, weak, seed)], res, gt[(task, point, strong, seed)], metric)
        for seed, res in runs.items()
        if (task, point, weak, seed) in gt and (task, point, strong, seed) in gt
    ]


def _figure_columns(per_seed: list[dict], metric: str) -> dict[str, float]:
    """`{role}_{metric}_{figure}` means over seeds and `pgr_{figure}` (ours: mean of per-seed PGR)."""
    out: dict[str, float] = {}
    for which in FIGURES:
        suffix = "" if which == "selected" else f"_{which}"
        for role in ROLES:
            out[f"{role}_{metric}_{which}"] = _mean([p[role + suffix] for p in per_seed])
        out[f"pgr_{which}"] = estimators.mean_of_seed_pgrs([p["pgr" + suffix] for p in per_seed])["mean"]
    return out


def _row(recipe_name: str, group: GroupKey, per_seed: list[dict], paper: estimators.MedianPgr, metric: str,
         found: _Collected, grid: dict) -> dict:  # fmt: skip
    task, _, kind, weak, strong, method, chain = group
    n_test = found.n_test.get(task)
    agg = estimators.mean_of_seed_pgrs([p["pgr"] for p in per_seed])
    figure_columns = _figure_columns(per_seed, metric)
    weak_m, w2s_m, ceil_m = (figure_columns[f"{role}_{metric}_selected"] for role in ROLES)
    row = {
        "recipe": recipe_name,
        "task": task,  # the suite's task, or the data's name
        "data_kind": found.data_kind.get(task, "classify"),
        "generative": (task, strong) in found.staged,  # the strong model's jobs started from a generative stage
        "kind": kind,
        "weak": weak,
        "strong": strong,
        "method": method,
        "chain": list(chain) if chain else None,
        "metric": metric,
        "grid": grid,  # the grid point's swept values ({} without a grid); flat columns below
        f"weak_{metric}": weak_m,
        f"w2s_{metric}": w2s_m,
        f"ceiling_{metric}": ceil_m,
        "pgr_mean": agg["mean"],
        "pgr_lo": agg["lo"],
        "pgr_hi": agg["hi"],
        "pgr": agg["mean"],  # the old name of pgr_mean, kept for scripts and tests that read it
        "pgr_median": paper.median,
        "n_valid": paper.n_valid,
        **figure_columns,
        "agree": _mean([p["agree"] for p in per_seed if p["agree"] is not None]),
        "agree_weak_wrong": _mean([p["agree_weak_wrong"] for p in per_seed if p["agree_weak_wrong"] is not None]),
        "seeds": [p["seed"] for p in per_seed],
        "per_seed": per_seed,
        # a self-pair's ceiling is its weak model by design: "pick a stronger strong model" would mislead
        "warnings": (
            stats.warnings_for(weak_m, ceil_m, w2s_m, n_test, found.chance.get(task, 0.5))
            if metric == "acc" and weak != strong
            else []
        ),
    }
    return pivot.with_flat_columns(row)


def _rows_with_paper(planned: list[PlannedJob], name: str, metric: str) -> list[tuple[dict, estimators.MedianPgr]]:
    """Each table row with the paper estimator's runs behind its median (the summary pools them)."""
    key = METRICS[metric]
    found = _collect(planned, key)
    # keyed (task, point, model): a model's GT mean is per task and grid point (a prompting job's too)
    means = estimators.base_means(  # type: ignore[arg-type]
        ((task, point, model), figure(res, metric, "selected")) for (task, point, model, _), res in found.gt.items()
    )
    out = []
    for groups in _shared(found).values():
        group = groups[0]
        runs = _finished(group, found.groups[group])
        per_seed = _per_seed(group, runs, found.gt, metric)
        if per_seed:
            # The paper counts every finished run of the pair, against GT means over all seeds.
            task, point, weak, strong = group[0], group[1], group[3], group[4]
            selected = (figure(r, metric, "selected") for r in runs.values())
            weak_key, strong_key = (task, point, weak), (task, point, strong)
            paper = estimators.median_pgr(weak_key, strong_key, selected, means)  # type: ignore[arg-type]
            grid = dict(set.intersection(*(set(g[1]) for g in groups)))  # what every point it stands for has
            row = _row(name, group, per_seed, paper, metric, found, dict(sorted(grid.items())))
            out.append((row, paper, _place(group, found)))
    out.sort(key=lambda rpp: rpp[2])
    return [(row, paper) for row, paper, _ in out]


def _shared(found: _Collected) -> dict[tuple, list[GroupKey]]:
    """The groups of each row: grid points whose weak, w2s and ceiling jobs are the same jobs (an xent
    transfer under an alpha sweep) make one row, whose `grid` keeps the values they all have."""
    rows: dict[tuple, list[GroupKey]] = defaultdict(list)
    for group, by_seed in found.groups.items():
        task, point, _, weak, strong = group[:5]
        jobs = tuple(
            (
                seed,
                *(found.hashes.get(k) for k in ((task, point, weak, seed), (group, seed), (task, point, strong, seed))),
            )
            for seed in sorted(_finished(group, by_seed))
        )
        rows[(task, *group[2:], jobs)].append(group)
    return rows


def _place(group: GroupKey, found: _Collected) -> tuple:
    """A row's place: by task, kind, weak and strong model in recipe order, method, then grid point."""
    task, point, kind, weak, strong, method, _ = group
    last = len(found.order)
    where = [found.order.get((task, model), last) for model in (weak, strong)]
    return (found.tasks.get(task, 0), KIND_ORDER.get(kind, 3), *where, method, found.points.get(point, 0))


def _table(store: Store, recipe_hash: str, metric: str, by: str | None) -> tuple[list[tuple], list[dict]]:
    """The rows with their paper estimators (`_rows_with_paper`), and the table's rows (pivoted by `by`),
    from one read of the recipe's jobs."""
    planned = queries.recipe_rows(store, recipe_hash)
    name = next((r["name"] for r in store.recipes() if r["hash"] == recipe_hash), recipe_hash[:10])
    with_paper = _rows_with_paper(planned, name, metric)
    rows = [row for row, _ in with_paper]
    if by is not None:  # the recipe's swept keys as grid_keys reads them, from the same read
        rows = pivot.pivot(rows, by, pivot.swept([job["role"] for job in planned]), name)  # type: ignore[arg-type]
    return with_paper, rows


def pgr_table(store: Store, recipe_hash: str, metric: str = "acc", by: str | None = None) -> list[dict]:
    """One row per transfer (weak, strong, method), per bootstrap chain and per prompting baseline, per
    task of a suite and per grid point, over the recipe's seeds. `by` (a key the grid sweeps): one row
    per value of it and setup, the best over the other swept keys' values (`pivot.pivot`)."""
    return _table(store, recipe_hash, metric, by)[1]


def pgr_summary(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """The paper's per-method figure: per (kind, method), the median PGR over every valid run of every
    pair (transfers as the notebook's per-loss table; bootstrap chains apart, by their last step)."""
    return _summary(_table(store, recipe_hash, metric, None)[0], metric)


def pgr_results(store: Store, recipe_hash: str, metric: str = "acc", by: str | None = None) -> tuple[list, list]:
    """`pgr_table(..., by)` and `pgr_summary` from one computation of the rows (`w2s results` shows both)."""
    with_paper, rows = _table(store, recipe_hash, metric, by)
    return rows, _summary(with_paper, metric)


def _summary(with_paper: list[tuple[dict, estimators.MedianPgr]], metric: str) -> list[dict]:
    pooled: dict[tuple[str, str, Point], list[estimators.MedianPgr]] = defaultdict(list)
    names: dict[tuple[str, str, Point], str] = {}
    for row, paper in with_paper:
        key = (row["kind"], row["method"], point_of(row))  # a grid's: per point (its lr, alpha...)
        pooled[key].append(paper)
        names[key] = row["recipe"]
    return [
        pivot.with_flat_columns(
            {"recipe": names[k], "kind": k[0], "method": k[1], "metric": metric, **estimators.summarize(papers)}
            | ({"grid": dict(k[2])} if k[2] else {})
        )
        for k, papers in pooled.items()
    ]


def chain_steps(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """Each bootstrap chain of a recipe (per task of a suite and grid point) as its models and the mean
    metric of each step over seeds (step 0 is the first model's GT job), shown while the chain is still
    running too. A grid's chains name their point (`grid`); points whose chain jobs are the same jobs
    (a chain under a sweep of a transfer's alpha) share one entry, named by the values they all have."""
    key = METRICS[metric]
    gt: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    steps: dict[tuple, dict[int, list[tuple[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for job in queries.recipe_rows(store, recipe_hash):
        role, res, task = job["role"], job["results"], task_of(job)
        if job["status"] != JobStatus.DONE or key not in res:
            continue
        found = (job["job_hash"], res[key])
        if role["role"] == "gt":
            gt[(task, point_of(role), role["model"])].append(found)
        elif role["role"] == "bootstrap":
            steps[(task, point_of(role), tuple(role["chain"]), role["method"])][role["step"]].append(found)
    shared: dict[tuple, list[Point]] = defaultdict(list)
    for (task, point, chain, method), by_step in steps.items():
        runs = [gt[(task, point, chain[0])], *(by_step.get(i, []) for i in range(1, len(chain)))]
        shared[(task, chain, method, tuple(tuple(sorted(step)) for step in runs))].append(point)
    return [
        {
            "task": task,
            "chain": list(chain),
            "method": method,
            "steps": [_mean([value for _, value in step]) for step in runs],
            **({"grid": dict(sorted(set.intersection(*(set(p) for p in points))))} if points[0] else {}),
        }
        for (task, chain, method, runs), points in shared.items()
    ]
