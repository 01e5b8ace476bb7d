"""The PGR table: weak, w2s and ceiling results per (weak, strong, method), aggregated over seeds.

Built from the store alone (roles recorded at planning, results recorded at ingest), so the CLI and
the TUI show the same numbers, and a results directory can be browsed without its recipes.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from w2s_core.analysis import stats as metrics
from w2s_core.store import Store

METRICS = {"acc": "test_acc", "auroc": "test_auroc"}


def _recipe_rows(store: Store, recipe_hash: str) -> list[tuple[dict, dict, str]]:
    """(role, results, status) of every job the recipe planned."""
    rows = store.db.query(
        "select rj.job_hash, rj.role, j.status from recipe_jobs rj join jobs j on j.hash = rj.job_hash "
        "where rj.recipe_hash = ? order by j.rowid", [recipe_hash])
    return [(json.loads(r["role"]), store.results(r["job_hash"]), r["status"]) for r in rows]


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def pgr_table(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """One row per transfer (weak, strong, method) and per bootstrap chain, over the recipe's seeds."""
    key = METRICS[metric]
    recipe = next((r for r in store.recipes() if r["hash"] == recipe_hash), {"name": recipe_hash[:10]})
    gt: dict[tuple[str, int], float] = {}
    order: dict[str, int] = {}  # models in recipe order (GT roles are recorded in plan order)
    groups: dict[tuple, dict[int, tuple[dict, dict]]] = defaultdict(dict)
    n_test = None
    for role, res, status in _recipe_rows(store, recipe_hash):
        if role["role"] == "gt":
            order.setdefault(role["model"], len(order))
        if status != "done" or key not in res:
            continue
        if role["role"] == "gt":
            gt[(role["model"], role["seed"])] = res[key]
        elif role["role"] == "transfer":
            groups[("transfer", role["weak"], role["strong"], role["method"], None)][role["seed"]] = (role, res)
        else:
            chain = tuple(role["chain"])
            seed_steps = groups[("bootstrap", chain[0], chain[-1], role["method"], chain)]
            prev = seed_steps.get(role["seed"])
            if prev is None or prev[0]["step"] < role["step"]:
                seed_steps[role["seed"]] = (role, res)
        if "n_test" in res:
            n_test = int(res["n_test"])
    rows = []
    for (kind, weak, strong, method, chain), by_seed in groups.items():
        per_seed = []
        for seed, (role, res) in sorted(by_seed.items()):
            if chain and role["step"] != len(chain) - 1:
                continue  # the chain has not reached its last model for this seed
            if (weak, seed) not in gt or (strong, seed) not in gt:
                continue
            w, s, c = gt[(weak, seed)], res[key], gt[(strong, seed)]
            per_seed.append({"seed": seed, "weak": w, "w2s": s, "ceiling": c, "pgr": metrics.pgr(w, s, c),
                             "agree": res.get("agree"), "agree_weak_wrong": res.get("agree_weak_wrong")})
        if not per_seed:
            continue
        agg = metrics.aggregate([p["pgr"] for p in per_seed])
        weak_m = _mean([p["weak"] for p in per_seed])
        ceil_m = _mean([p["ceiling"] for p in per_seed])
        w2s_m = _mean([p["w2s"] for p in per_seed])
        rows.append({
            "recipe": recipe["name"], "kind": kind, "weak": weak, "strong": strong, "method": method,
            "chain": list(chain) if chain else None, "metric": metric,
            f"weak_{metric}": weak_m, f"w2s_{metric}": w2s_m, f"ceiling_{metric}": ceil_m,
            "pgr": agg["mean"], "pgr_lo": agg["lo"], "pgr_hi": agg["hi"],
            "agree": _mean([p["agree"] for p in per_seed if p["agree"] is not None]),
            "agree_weak_wrong": _mean([p["agree_weak_wrong"] for p in per_seed if p["agree_weak_wrong"] is not None]),
            "seeds": [p["seed"] for p in per_seed], "per_seed": per_seed,
            "warnings": metrics.warnings_for(weak_m, ceil_m, w2s_m, n_test) if metric == "acc" else [],
        })
    rows.sort(key=lambda r: (r["kind"] != "transfer", order[r["weak"]], order[r["strong"]], r["method"]))
    return rows


def chain_steps(store: Store, recipe_hash: str, metric: str = "acc") -> list[dict]:
    """Each bootstrap chain of a recipe as its models and the mean metric of each step over seeds
    (step 0 is the first model's GT job), shown while the chain is still running too."""
    key = METRICS[metric]
    gt: dict[str, list[float]] = defaultdict(list)
    steps: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for role, res, status in _recipe_rows(store, recipe_hash):
        if status != "done" or key not in res:
            continue
        if role["role"] == "gt":
            gt[role["model"]].append(res[key])
        elif role["role"] == "bootstrap":
            steps[(tuple(role["chain"]), role["method"])][role["step"]].append(res[key])
    return [{"chain": list(chain), "method": method,
             "steps": [_mean(gt[chain[0]])] + [_mean(by_step.get(i, [])) for i in range(1, len(chain))]}
            for (chain, method), by_step in steps.items()]


def ci_text(row: dict) -> str:
    """A row's 95% interval of PGR, or n/a with one seed."""
    return "n/a" if math.isnan(row["pgr_lo"]) else f"[{row['pgr_lo']:.2f}, {row['pgr_hi']:.2f}]"


def strong_label(row: dict) -> str:
    """The strong side of a row: the model, or a chain's steps after the weak model."""
    return " > ".join(row["chain"][1:]) if row["chain"] else row["strong"]


def format_table(rows: list[dict]) -> str:
    """A text table for the terminal, columns as wide as their widest entry."""
    if not rows:
        return "no finished transfer results yet"
    metric = rows[0]["metric"]
    cells = []
    for r in rows:
        cells.append([r["weak"], strong_label(r), r["method"], f"{r[f'weak_{metric}']:.3f}", f"{r[f'w2s_{metric}']:.3f}",
                      f"{r[f'ceiling_{metric}']:.3f}", f"{r['pgr']:.2f}", ci_text(r), str(len(r["seeds"]))])
    head = ["weak", "strong", "method", "weak", "w2s", "ceiling", "PGR", "95% CI", "seeds"]
    widths = [max(len(x) for x in col) for col in zip(head, *cells)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    lines = [f"metric: {metric}", line(head), "-" * len(line(head))]
    for r, row in zip(rows, cells):
        lines.append(line(row))
        lines += [f"    warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)
