"""Read-only queries across tables: the TUI's paged job lists and metric series, and analysis's input.

The store's methods load whole tables; a database with 10,000 jobs and a million metric rows
needs paged job lists that fetch each job's latest metrics by index seek, and metric series read
incrementally from a sequence number, so a live view only reads what is new.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import TYPE_CHECKING

from w2s_core.jobdir import Event, Result
from w2s_core.store.annotations import JOB_TAG_CLAUSE, JOB_TAGS_SQL, TAG_PREFIX
from w2s_core.store.connection import sqlite_errors
from w2s_core.store.ingest import nan_if_none
from w2s_core.store.rows import JobListRow, PlannedJob, RecipeSummary

if TYPE_CHECKING:
    from w2s_core.store import Store

SORTS = {
    "recent": "coalesce(j.started_at, 0) DESC, rid DESC",
    "status": "j.status, coalesce(j.started_at, 0) DESC",
    "model": "j.model, j.seed, rid",
    "loss": "last_loss IS NULL, last_loss, rid",
}
LIVE_KEYS = (Event.LOSS, Event.EXAMPLES, Event.EXAMPLES_PER_S, Event.TEST_ACC)


def _last(key: str) -> str:
    return (
        f"(SELECT value FROM metrics m WHERE m.job_hash = j.hash AND m.key = '{key}' "
        f"ORDER BY m.seq DESC LIMIT 1) AS last_{key}"
    )


GT_ROLE_TEXT = "GT weak/ceiling"  # how job lists label a GT job (it is its model's weak supervisor and ceiling)

_SEARCHED = (
    "j.hash",
    "j.model",
    "coalesce(j.weak_model, '')",
    "coalesce(j.loss, '')",
    "j.kind",
    "coalesce(r.name, '')",
    "coalesce(json_extract(j.spec, '$.data.name'), '')",
    "coalesce(json_extract(j.spec, '$.data.path'), '')",
    f"(CASE j.kind WHEN 'gt' THEN '{GT_ROLE_TEXT}' ELSE '' END)",
)  # so a search matches the label shown


def _where(text: str, status: str | None) -> tuple[str, list]:
    clauses, params = [], []
    for word in text.split():
        if word.startswith(TAG_PREFIX) and len(word) > len(TAG_PREFIX):  # `tag:NAME` (issue 13)
            clauses.append(JOB_TAG_CLAUSE)
            params.append(word[len(TAG_PREFIX) :])
            continue
        clauses.append("(" + " OR ".join(f"{col} LIKE ?" for col in _SEARCHED) + ")")
        params += [f"%{word}%"] * len(_SEARCHED)
    if status:
        clauses.append("j.status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


_FROM = " FROM jobs j LEFT JOIN recipes r ON r.hash = j.recipe_hash"
_JOB_LIST_COLUMNS = (
    "j.hash, j.kind, j.model, j.weak_model, j.loss, j.seed, j.status, j.wait_reason, j.executor, j.slurm_job_id, "
    "j.slurm_state, j.pid, j.started_at, "
    "j.finished_at, j.dir, j.recipe_hash, j.recipe, "
    "coalesce(json_extract(j.spec, '$.data.name'), json_extract(j.spec, '$.data.path')) AS dataset, "
    "json_extract(j.spec, '$.data.n_train') AS n_train, json_extract(j.spec, '$.train.epochs') AS epochs, "
    "(SELECT role FROM recipe_jobs rj WHERE rj.job_hash = j.hash LIMIT 1) AS role, "
    f"(SELECT value FROM results x WHERE x.job_hash = j.hash AND x.key = '{Result.TEST_ACC}') AS final_acc, "
    # GPU use of the job's latest attempt (store/gpus.py keeps these aggregates as the supervisor samples)
    "(SELECT g.peak_mb FROM gpu_job_stats g WHERE g.job_hash = j.hash) AS gpu_peak_mb, "
    "(SELECT g.util_sum / g.util_n FROM gpu_job_stats g WHERE g.job_hash = j.hash AND g.util_n > 0) AS gpu_util_mean, "
    f"{JOB_TAGS_SQL}, "  # its own, its run's and its recipes' tags (store/annotations.py)
)


@sqlite_errors
def count_jobs(store: Store, text: str = "", status: str | None = None) -> int:
    where, params = _where(text, status)
    return store.db.execute("SELECT count(*)" + _FROM + where, params).fetchone()[0]


@sqlite_errors
def job_rows(
    store: Store, text: str = "", status: str | None = None, sort: str = "recent", offset: int = 0, limit: int = 200
) -> list[JobListRow]:
    """One page of jobs matching every word of `text` (hash, model, method, kind, recipe, dataset; a word
    `tag:NAME` keeps the jobs that carry tag NAME, their own or their run's or recipe's)."""
    where, params = _where(text, status)
    # Sort and page the bare row ids first (a narrow sort: a third of the time of sorting whole rows at
    # 10,000 jobs), then read those jobs, so the per-job lookups below run for one page only.
    loss_column = f", {_last(Event.LOSS)}" if sort == "loss" else ""
    ids = f"SELECT j.rowid AS rid{loss_column}" + _FROM + where + f" ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?"
    page = (
        f"SELECT j.*, p.rid AS rid, r.name AS recipe FROM ({ids}) p JOIN jobs j ON j.rowid = p.rid"
        " LEFT JOIN recipes r ON r.hash = j.recipe_hash"
    )
    sql = (
        "SELECT "
        + _JOB_LIST_COLUMNS
        + ", ".join(_last(k) for k in LIVE_KEYS)
        + f" FROM ({page}) j ORDER BY {SORTS[sort]}"
    )
    rows = [dict(r) for r in store.db.query(sql, [*params, limit, offset])]
    for row in rows:
        row["role"] = json.loads(row["role"]) if row["role"] else None
        row["tags"] = sorted(row["tags"].split(",")) if row["tags"] else []
        epochs = row["epochs"] or 1
        row["total_examples"] = math.ceil((row["n_train"] or 0) // 2 * epochs) or None
    return rows  # type: ignore[return-value]


@sqlite_errors
def metric_series(
    store: Store, job_hash: str, keys: tuple[str, ...] | None = None, since_seq: int = -1
) -> tuple[dict[str, list[tuple[int, float]]], int]:
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


@sqlite_errors
def recipes_with_results(store: Store) -> list[RecipeSummary]:
    """Recipes that planned at least one job, newest first."""
    return [
        dict(r)
        for r in store.db.query(  # type: ignore[misc]
            "SELECT hash, name, path, created_at FROM recipes r WHERE EXISTS "
            "(SELECT 1 FROM recipe_jobs rj WHERE rj.recipe_hash = r.hash) ORDER BY created_at DESC"
        )
    ]


@sqlite_errors
def recipe_rows(store: Store, recipe_hash: str) -> list[PlannedJob]:
    """Every job the recipe planned, in planning order, with its role, status and final results, and
    from its spec: its dataset's name (or file), the data's kind and its generative stage's key."""
    rows = store.db.query(
        "SELECT rj.job_hash, rj.role, j.status, "
        "coalesce(json_extract(j.spec, '$.data.name'), json_extract(j.spec, '$.data.path')) AS dataset, "
        "json_extract(j.spec, '$.data.kind') AS data_kind, json_extract(j.spec, '$.init.from') AS init "
        "FROM recipe_jobs rj JOIN jobs j ON j.hash = rj.job_hash WHERE rj.recipe_hash = ? ORDER BY j.rowid",
        [recipe_hash],
    )
    results: dict[str, dict[str, float]] = defaultdict(dict)  # one query for every job's results
    for job_hash, key, value in store.db.execute(
        "SELECT x.job_hash, x.key, x.value FROM recipe_jobs rj JOIN results x ON x.job_hash = rj.job_hash "
        "WHERE rj.recipe_hash = ? ORDER BY x.key",
        [recipe_hash],
    ):
        results[job_hash][key] = nan_if_none(value)
    return [
        {
            "job_hash": r["job_hash"],
            "role": json.loads(r["role"]),
            "status": r["status"],
            "results": results[r["job_hash"]],
            "dataset": r["dataset"],
            "data_kind": r["data_kind"] or "classify",  # left out of the spec when it is the default
            "init": r["init"],
        }
        for r in rows
    ]
