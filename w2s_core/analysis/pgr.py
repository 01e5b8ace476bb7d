"""The PGR table: weak, w2s and ceiling results per (weak, strong, method), aggregated over seeds.

Each row carries both PGR estimators (`estimators.py`: ours, the mean of per-seed PGR with a 95%
interval; the paper's, the median against seed-averaged models) and the final, selected and oracle
figures of every role (`figures.py`). `pgr_summary` gives the paper's per-method figure.

Built from the store alone (roles recorded at planning, results recorded at ingest), so the CLI and
the TUI show the same numbers, and a results directory can be browsed without its recipes. The
rows come from `w2s_core.store.queries.recipe_rows`; this module reads roles, never SQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from w2s_core.analysis import estimators, stats
from w2s_core.analysis.figures import FIGURES, METRICS, figure
from w2s_core.jobdir import Result
from w2s_core.status import JobStatus
from w2s_core.store import queries

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import PlannedJob, Role

__all__ = ["chain_steps", "pgr_summary", "pgr_table"]

# (kind, weak, strong, method, chain or None): one table row
GroupKey = tuple[str, str, str, str, tuple[str, ...] | None]
ROLES = ("weak", "w2s", "ceiling")


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


@dataclass
class _Collected:
    """A recipe's finished results, sorted into GT results and transfer/bootstrap groups."""

    gt: dict[tuple[str, int], dict] = field(default_factory=dict)  # (model, seed) -> results
    order: dict[str, int] = field(default_factory=dict)  # models in recipe order (GT roles are in plan order)
    groups: dict[GroupKey, dict[int, tuple[Role, dict]]] = field(default_factory=lambda: defaultdict(dict))
    n_test: int | None = None


def _collect(planned: list[PlannedJob], key: str) -> _Collected:
    out = _Collected()
    for job in planned:
        role, res = job["role"], job["results"]
        if role["role"] == "gt":
            out.order.setdefault(role["model"], len(out.order))
        if job["status"] != JobStatus.DONE or key not in res:
            continue
        if role["role"] == "gt":
            out.gt[(role["model"], role["seed"])] = res
        elif role["role"] == "transfer":
            out.groups[("transfer", role["weak"], role["strong"], role["method"], None)][role["seed"]] = (role, res)
        else:
            chain = tuple(role["chain"])
            seed_steps = out.groups[("bootstrap", chain[0], chain[-1], role["method"], chain)]
            prev = seed_steps.get(role["seed"])
            if prev is None or prev[0]["step"] < role["step"]:  # a chain's row uses its last step
                seed_steps[role["seed"]] = (role, res)
        if Result.N_TEST in res:
            out.n_test = int(res[Result.N_TEST])
    return out


def _finished(group: GroupKey, by_seed: dict[int, tuple[Role, dict]]) -> dict[int, dict]:
    """{seed: results} of the group's runs that reached the end (a chain: its last model)."""
    chain = group[4]
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
    """Each seed whose weak and strong GT jobs are done, with its own weak, w2s and ceiling."""
    _, weak, strong, _, _ = group
    return [
        _seed_entry(seed, gt[(weak, seed)], res, gt[(strong, seed)], metric)
        for seed, res in runs.items()
        if (weak, seed) in gt and (strong, seed) in gt
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


def _row(
    recipe_name: str,
    group: GroupKey,
    per_seed: list[dict],
    paper: estimators.MedianPgr,
    metric: str,
    n_test: int | None,
) -> dict:
    kind, weak, strong, method, chain = group
    agg = estimators.mean_of_seed_pgrs([p["pgr"] for p in per_seed])
    figure_columns = _figure_columns(per_seed, metric)
    weak_m, w2s_m, ceil_m = (figure_columns[f"{role}_{metric}_selected"] for role in ROLES)
    return {
        "recipe": recipe_name,
        "kind": kind,
        "weak": weak,
        "strong": strong,
        "method": method,
        "chain": list(chain) if chain else None,
        "metric": metric,
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
        "warnings": stats.warnings_for(weak_m, ceil_m, w2s_m, n_test) if metric == "acc" and weak != strong else [],
    }


def _rows_with_paper(store: Store, recipe_hash: str, metric: str) -> list[tuple[dict, estimators.MedianPgr]]:
    """Each table row with the paper estimator's runs behind its median (the summary pools them)."""
    key = METRICS[metric]
    recipe = next((r for r in store.recipes() if r["hash"] == recipe_hash), {"name": recipe_hash[:10]})
    found = _collect(queries.recipe_rows(store, recipe_hash), key)
    means = estimators.base_means((model, figure(res, metric, "selected")) for (model, _), res in found.gt.items())
    out = []
    for group, by_seed in found.groups.items():
        runs = _finished(group, by_seed)
        per_seed = _per_seed(group, runs, found.gt, metric)
        if per_seed:
            # The paper counts every finished run of the pair, against GT means over all seeds.
            paper = estimators.median_pgr(
                group[1], group[2], (figure(r, metric, "selected") for r in runs.values()), means
            )
            out.append((_row(recipe["name"], group, per_seed, paper, metric, found.n_test), paper))
    order = found.order
    out.sort(
        key=lambda rp: (rp[0]["kind"] != "transfer", order[rp[0]["weak"]], order[rp[0]["strong"]], rp[0]["method"])
    )
    return out


def pgr_table(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """One row per transfer (weak, strong, method) and per bootstrap chain, over the recipe's seeds."""
    return [row for row, _ in _rows_with_paper(store, recipe_hash, metric)]


def pgr_summary(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """The paper's per-method figure: per (kind, method), the median PGR over every valid run of every
    pair (transfers as the notebook's per-loss table; bootstrap chains apart, by their last step)."""
    pooled: dict[tuple[str, str], list[estimators.MedianPgr]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for row, paper in _rows_with_paper(store, recipe_hash, metric):
        pooled[(row["kind"], row["method"])].append(paper)
        names[(row["kind"], row["method"])] = row["recipe"]
    return [
        {"recipe": names[k], "kind": k[0], "method": k[1], "metric": metric, **estimators.summarize(papers)}
        for k, papers in pooled.items()
    ]


def chain_steps(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """Each bootstrap chain of a recipe as its models and the mean metric of each step over seeds
    (step 0 is the first model's GT job), shown while the chain is still running too."""
    key = METRICS[metric]
    gt: dict[str, list[float]] = defaultdict(list)
    steps: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in queries.recipe_rows(store, recipe_hash):
        role, res = job["role"], job["results"]
        if job["status"] != JobStatus.DONE or key not in res:
            continue
        if role["role"] == "gt":
            gt[role["model"]].append(res[key])
        elif role["role"] == "bootstrap":
            steps[(tuple(role["chain"]), role["method"])][role["step"]].append(res[key])
    return [
        {
            "chain": list(chain),
            "method": method,
            "steps": [_mean(gt[chain[0]])] + [_mean(by_step.get(i, [])) for i in range(1, len(chain))],
        }
        for (chain, method), by_step in steps.items()
    ]
