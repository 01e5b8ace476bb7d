"""Read-only queries for browsing a results database page by page (the TUI's data layer).

The store's methods load whole tables; a database with 10,000 jobs and a million metric rows
needs paged job lists that fetch each job's latest metrics by index seek, and metric series read
incrementally from a sequence number, so a live view only reads what is new.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections import defaultdict

from .errors import W2SError
from .store import Store

SORTS = {
    "recent": "coalesce(j.started_at, 0) DESC, rid DESC",
    "status": "j.status, coalesce(j.started_at, 0) DESC",
    "model": "j.model, j.seed, rid",
    "loss": "last_loss IS NULL, last_loss, rid",
}
LIVE_KEYS = ("loss", "examples", "examples_per_s", "test_acc")


def _readable(query):
    """A failing read (a damaged file, a lock held too long) becomes one W2SError paragraph."""

    @functools.wraps(query)
    def wrapper(store: Store, *args, **kwargs):
        try:
            return query(store, *args, **kwargs)
        except sqlite3.Error as exc:
            raise W2SError(f"Reading the w2s results database {store.path} failed in {query.__name__}: {exc}. "
                           "If it persists, move the file aside and re-run the recipes.") from exc

    return wrapper


def _last(key: str) -> str:
    return (f"(SELECT value FROM metrics m WHERE m.job_hash = j.hash AND m.key = '{key}' "
            f"ORDER BY m.seq DESC LIMIT 1) AS last_{key}")


_SEARCHED = ("j.hash", "j.model", "coalesce(j.weak_model, '')", "coalesce(j.loss, '')", "j.kind",
             "coalesce(r.name, '')", "coalesce(json_extract(j.spec, '$.data.name'), '')",
             "coalesce(json_extract(j.spec, '$.data.path'), '')")


def _where(text: str, status: str | None) -> tuple[str, list]:
    clauses, params = [], []
    for word in text.split():
        clauses.append("(" + " OR ".join(f"{col} LIKE ?" for col in _SEARCHED) + ")")
        params += [f"%{word}%"] * len(_SEARCHED)
    if status:
        clauses.append("j.status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_FROM = " FROM jobs j LEFT JOIN recipes r ON r.hash = j.recipe_hash"


@_readable
def count_jobs(store: Store, text: str = "", status: str | None = None) -> int:
    where, params = _where(text, status)
    return store.db.execute("SELECT count(*)" + _FROM + where, params).fetchone()[0]


@_readable
def job_rows(store: Store, text: str = "", status: str | None = None, sort: str = "recent",
             offset: int = 0, limit: int = 200) -> list[dict]:
    """One page of jobs matching every word of `text` (hash, model, method, kind, recipe, dataset)."""
    where, params = _where(text, status)
    # Sort and page the bare jobs first, so the per-job lookups below run for one page only.
    page = ("SELECT j.*, j.rowid AS rid, r.name AS recipe" + (f", {_last('loss')}" if sort == "loss" else "") + _FROM + where
            + f" ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?")
    sql = ("SELECT j.hash, j.kind, j.model, j.weak_model, j.loss, j.seed, j.status, j.pid, j.started_at, "
           "j.finished_at, j.dir, j.recipe_hash, j.recipe, "
           "coalesce(json_extract(j.spec, '$.data.name'), json_extract(j.spec, '$.data.path')) AS dataset, "
           "json_extract(j.spec, '$.data.n_train') AS n_train, json_extract(j.spec, '$.train.epochs') AS epochs, "
           "(SELECT role FROM recipe_jobs rj WHERE rj.job_hash = j.hash LIMIT 1) AS role, "
           "(SELECT value FROM results x WHERE x.job_hash = j.hash AND x.key = 'test_acc') AS final_acc, "
           + ", ".join(_last(k) for k in LIVE_KEYS) + f" FROM ({page}) j ORDER BY {SORTS[sort]}")
    rows = [dict(r) for r in store.db.query(sql, [*params, limit, offset])]
    for row in rows:
        row["role"] = json.loads(row["role"]) if row["role"] else None
        epochs = row["epochs"] or 1
        row["total_examples"] = math.ceil((row["n_train"] or 0) // 2 * epochs) or None
    return rows


@_readable
def metric_series(store: Store, job_hash: str, keys: tuple[str, ...] | None = None,
                  since_seq: int = -1) -> tuple[dict[str, list[tuple[int, float]]], int]:
    """{key: [(step or seq, value)]} for events after `since_seq`, and the last seq read."""
    sql = "SELECT seq, step, key, value FROM metrics WHERE job_hash = ? AND seq > ?"
    params: list = [job_hash, since_seq]
    if keys:
        sql += f" AND key IN ({', '.join('?' * len(keys))})"
        params += list(keys)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    last = since_seq
    for seq, step, key, value in store.db.execute(sql + " ORDER BY seq", params):
        if value is not None:
            series[key].append((seq if step is None else step, value))
        last = max(last, seq)
    return dict(series), last


@_readable
def recipes_with_results(store: Store) -> list[dict]:
    """Recipes that planned at least one job, newest first."""
    return [dict(r) for r in store.db.query(
        "SELECT hash, name, path, created_at FROM recipes r WHERE EXISTS "
        "(SELECT 1 FROM recipe_jobs rj WHERE rj.recipe_hash = r.hash) ORDER BY created_at DESC")]


@_readable
def chain_steps(store: Store, recipe_hash: str, metric_key: str) -> list[dict]:
    """Each bootstrap chain of a recipe: its models and the mean `metric_key` of each step over seeds
    (step 0 is the first model's GT job)."""
    roles = [(json.loads(r["role"]), r["job_hash"]) for r in store.db.query(
        "SELECT rj.role, rj.job_hash FROM recipe_jobs rj JOIN jobs j ON j.hash = rj.job_hash "
        "WHERE rj.recipe_hash = ? AND j.status = 'done'", [recipe_hash])]
    value = {h: v for h, v in store.db.execute(
        "SELECT job_hash, value FROM results WHERE key = ? AND job_hash IN "
        "(SELECT job_hash FROM recipe_jobs WHERE recipe_hash = ?)", [metric_key, recipe_hash])}
    gt = defaultdict(list)
    steps: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for role, h in roles:
        if h not in value:
            continue
        if role["role"] == "gt":
            gt[role["model"]].append(value[h])
        elif role["role"] == "bootstrap":
            steps[(tuple(role["chain"]), role["method"])][role["step"]].append(value[h])
    out = []
    for (chain, method), by_step in steps.items():
        means = {0: gt[chain[0]]} | dict(by_step)
        out.append({"chain": list(chain), "method": method,
                    "steps": [sum(v) / len(v) if v else None for v in (means.get(i, []) for i in range(len(chain)))]})
    return out
