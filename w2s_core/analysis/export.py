"""Parquet exports of a results database (`w2s export --parquet DIR`), for pandas, polars and the like.

Five files, each with an explicit schema (the same column types whatever the rows, an empty table too):

    results.parquet      the PGR rows of `pgr.pgr_table` (the `w2s results --json` names), for both
                         metrics (column `metric`: acc, auroc; the other metric's figures are null);
                         intervals as numbers; a grid point's swept keys as columns too
    jobs.parquet         every job of the recipes: what it is, where and when it ran, its spec as JSON,
                         its role, its final results as columns, its tags
    metrics.parquet      each job's event stream: job_hash, seq (line of events.jsonl), step, name, value
    predictions.parquet  job_hash, split, idx (the example's position), label, prob, dist (K-class and
                         choice tasks: the whole distribution; null for two-way tasks)
    runs.parquet         the runs of the recipes with their tags and notes

Each file is written beside its final name and renamed over it, so a reader never sees half a file.
pyarrow is imported inside the functions: it loads slowly, and `w2s --help` must not pay for it.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w2s_core.analysis.figures import FIGURES
from w2s_core.analysis.pgr import ROLES, pgr_table
from w2s_core.store import exports as export_queries
from w2s_core.store import queries

if TYPE_CHECKING:
    from w2s_core.store import Store

__all__ = ["FILES", "collect_jobs", "export_parquet", "note_map", "result_rows", "tag_map"]

METRICS = ("acc", "auroc")  # results.parquet holds the table of both
BATCH_ROWS = 65_536  # rows per Parquet row group of the metrics and predictions files

# Column kinds -> pyarrow types (`_arrow_type`); times are Unix seconds in the store, UTC timestamps here.
Columns = tuple[tuple[str, str], ...]
# each metric's figures (`weak_acc`, `weak_acc_final`, ...): a row fills those of its `metric`, nulls the rest
_FIGURE_COLUMNS: Columns = tuple(
    (f"{role}_{metric}{suffix}", "float")
    for metric in METRICS
    for suffix in ("", *(f"_{which}" for which in FIGURES))
    for role in ROLES
)
RESULT_COLUMNS: Columns = (
    ("recipe", "str"), ("recipe_hash", "str"), ("task", "str"), ("data_kind", "str"), ("generative", "bool"),
    ("kind", "str"), ("weak", "str"), ("strong", "str"), ("method", "str"), ("chain", "strs"), ("metric", "str"),
    ("pgr_mean", "float"), ("pgr_lo", "float"), ("pgr_hi", "float"), ("pgr", "float"), ("pgr_median", "float"),
    ("n_valid", "int"), *[(f"pgr_{which}", "float") for which in FIGURES], *_FIGURE_COLUMNS, ("agree", "float"),
    ("agree_weak_wrong", "float"), ("seeds", "ints"), ("per_seed", "json"), ("warnings", "strs"), ("grid", "json"),
)  # fmt: skip
JOB_COLUMNS: Columns = (
    ("hash", "str"), ("recipe", "str"), ("recipe_hash", "str"), ("recipes", "strs"), ("role", "json"),
    ("kind", "str"), ("model", "str"), ("weak_model", "str"), ("loss", "str"), ("seed", "int"), ("run_id", "int"),
    ("status", "str"), ("device", "str"), ("executor", "str"), ("exit_code", "int"), ("error", "str"),
    ("queued_at", "time"), ("started_at", "time"), ("finished_at", "time"), ("requeues", "int"), ("dir", "str"),
    ("spec", "json"), ("tags", "strs"),
)  # fmt: skip
METRIC_COLUMNS: Columns = (("job_hash", "str"), ("seq", "int"), ("step", "int"), ("name", "str"), ("value", "float"))
PREDICTION_COLUMNS: Columns = (
    ("job_hash", "str"), ("split", "str"), ("idx", "int"), ("label", "int"), ("prob", "float"), ("dist", "floats"),
)  # fmt: skip
RUN_COLUMNS: Columns = (
    ("id", "int"), ("recipe", "str"), ("recipe_hash", "str"), ("status", "str"), ("started_at", "time"),
    ("finished_at", "time"), ("argv", "strs"), ("provenance", "json"), ("tags", "strs"), ("notes", "strs"),
)  # fmt: skip
FILES = ("results", "jobs", "metrics", "predictions", "runs")


def _arrow_type(kind: str):
    import pyarrow as pa

    return {
        "str": pa.string(),
        "json": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "time": pa.timestamp("ms", tz="UTC"),
        "strs": pa.list_(pa.string()),
        "ints": pa.list_(pa.int64()),
        "floats": pa.list_(pa.float64()),
    }[kind]


def _cell(value: Any, kind: str) -> Any:
    """A Python value as its column kind holds it: NaN is null (missing), times are milliseconds,
    JSON columns are text."""
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, sort_keys=True, default=str)
    if kind == "float":
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if kind == "int":
        return int(value)
    if kind == "time":
        return int(round(float(value) * 1000))
    if kind in ("strs", "ints"):
        return [str(v) if kind == "strs" else int(v) for v in value]
    if kind == "floats":
        return [None if math.isnan(v) else float(v) for v in value]
    return str(value) if kind == "str" else value


def _jsonable(value: Any) -> Any:
    """`value` with every NaN as None: a missing figure, null in Parquet and JSON (NaN is not JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _extra_kind(values: list[Any]) -> str:
    """The kind of a column only some exports have (a grid's swept key, a result key): from its values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int" if present else "float"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "str"
    return "json"


def _with_extras(fixed: Columns, rows: list[dict], kinds: dict[str, str] | None = None) -> Columns:
    """The fixed columns, then every other key of `rows` (sorted), its kind from `kinds` or its values."""
    names = {name for name, _ in fixed}
    extra = sorted({k for row in rows for k in row} - names)
    kinds = kinds or {}
    return (*fixed, *[(k, kinds.get(k) or _extra_kind([row.get(k) for row in rows])) for k in extra])


def _table(columns: Columns, rows: list[dict]):
    """A pyarrow table of `rows` with exactly `columns` (missing keys are null)."""
    import pyarrow as pa

    schema = pa.schema([(name, _arrow_type(kind)) for name, kind in columns])
    data = {name: [_cell(_jsonable(row.get(name)), kind) for row in rows] for name, kind in columns}
    return pa.Table.from_pydict(data, schema=schema)


def _write(path: Path, columns: Columns, batches: Iterable[list[dict]]) -> int:
    """Write the rows of `batches` to `path` (temp file, then renamed over it); returns the row count."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        empty = _table(columns, [])
        with pq.ParquetWriter(tmp, empty.schema) as writer:
            for rows in batches:
                if rows:
                    writer.write_table(_table(columns, rows))
                    count += len(rows)
            if not count:
                writer.write_table(empty)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _batched(rows: Iterable[dict], size: int = BATCH_ROWS) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    yield batch


# -- what goes in ------------------------------------------------------------------------------------


def tag_map(store: Store, kind: str) -> dict[str, list[str]]:
    """{target: its tags, in the order they were added} for one kind of tag (run, job, recipe)."""
    found: dict[str, list[str]] = defaultdict(list)
    for row in store.tags(kind):
        found[row["target"]].append(row["tag"])
    return dict(found)


def note_map(store: Store) -> dict[int, list[str]]:
    """{run id: the texts of its notes, oldest first}."""
    found: dict[int, list[str]] = defaultdict(list)
    for note in store.notes():
        found[note["run_id"]].append(note["text"])
    return dict(found)


def result_rows(store: Store, recipe_hashes: list[str]) -> list[dict]:
    """The PGR rows of the recipes for both metrics (`metric`; the figures of the other metric are null),
    with the recipe's hash, and a grid point's swept keys as columns of their own (`grid` keeps them
    all as JSON; a key a fixed column has is `grid_<key>`)."""
    fixed = {name for name, _ in RESULT_COLUMNS}
    out = []
    for recipe_hash in recipe_hashes:
        for metric in METRICS:
            for row in pgr_table(store, recipe_hash, metric):
                flat = {**row, "recipe_hash": recipe_hash}
                grid = row.get("grid") or {}
                flat["grid"] = grid
                flat.update({(f"grid_{k}" if k in fixed else k): v for k, v in grid.items()})
                out.append(flat)
    return out


def collect_jobs(store: Store, recipe_hashes: list[str]) -> list[dict]:
    """Every job of the recipes once, in planning order, with `recipe` (the first exported recipe that
    uses it), `recipes` (all of them), `role` (in that first recipe), `results` and `tags` (its own)."""
    names = {r["hash"]: r["name"] for r in store.recipes()}
    job_tags = tag_map(store, "job")
    jobs: dict[str, dict] = {}
    for recipe_hash in recipe_hashes:
        planned = {p["job_hash"]: p for p in queries.recipe_rows(store, recipe_hash)}
        for job in store.jobs(recipe_hash=recipe_hash):
            entry = jobs.get(job["hash"])
            if entry is None:
                p = planned.get(job["hash"])
                entry = jobs[job["hash"]] = {
                    **job,
                    "recipe": names.get(recipe_hash),
                    "recipe_hash": recipe_hash,
                    "recipes": [],
                    "recipe_hashes": [],
                    "role": p["role"] if p else None,
                    "results": p["results"] if p else store.results(job["hash"]),
                    "tags": job_tags.get(job["hash"], []),
                }
            if recipe_hash not in entry["recipe_hashes"]:
                entry["recipe_hashes"].append(recipe_hash)
                entry["recipes"].append(names.get(recipe_hash, recipe_hash[:10]))
    return list(jobs.values())


def _job_rows(jobs: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """jobs.parquet's rows (results as columns; a key a fixed column has: `result_<key>`) and the kinds
    of the result columns (always numbers: the results table holds numbers)."""
    fixed = {name for name, _ in JOB_COLUMNS}
    rows, kinds = [], {}
    for job in jobs:
        row = {name: job.get(name) for name in fixed}
        for key, value in job["results"].items():
            column = f"result_{key}" if key in fixed else key
            row[column], kinds[column] = value, "float"
        rows.append(row)
    return rows, kinds


def _metric_rows(store: Store, jobs: list[dict]) -> Iterator[dict]:
    for job in jobs:
        for m in store.metrics(job["hash"]):
            yield {"job_hash": job["hash"], "seq": m["seq"], "step": m["step"], "name": m["key"], "value": m["value"]}


def _prediction_rows(store: Store, jobs: list[dict]) -> Iterator[dict]:
    for job in jobs:
        for split, idx, label, prob, dist in export_queries.prediction_rows(store, job["hash"]):
            yield {"job_hash": job["hash"], "split": split, "idx": idx, "label": label, "prob": prob, "dist": dist}


def _run_rows(store: Store, recipe_hashes: list[str]) -> list[dict]:
    names = {r["hash"]: r["name"] for r in store.recipes()}
    run_tags, notes = tag_map(store, "run"), note_map(store)
    wanted = set(recipe_hashes)
    return [
        {
            **run,
            "recipe": names.get(run["recipe_hash"]),
            "tags": run_tags.get(str(run["id"]), []),
            "notes": notes.get(run["id"], []),
        }
        for run in store.runs()
        if run["recipe_hash"] in wanted
    ]


def export_parquet(store: Store, recipe_hashes: list[str], out_dir: str | Path) -> list[tuple[Path, int]]:
    """Write the five Parquet files of the recipes into `out_dir` (created if need be, files there
    replaced); returns (path, row count) of each, in `FILES` order."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    jobs = collect_jobs(store, recipe_hashes)
    results = result_rows(store, recipe_hashes)
    job_rows, result_kinds = _job_rows(jobs)
    written = []
    for name, columns, batches in (
        ("results", _with_extras(RESULT_COLUMNS, results), [results]),
        ("jobs", _with_extras(JOB_COLUMNS, job_rows, result_kinds), [job_rows]),
        ("metrics", METRIC_COLUMNS, _batched(_metric_rows(store, jobs))),
        ("predictions", PREDICTION_COLUMNS, _batched(_prediction_rows(store, jobs))),
        ("runs", RUN_COLUMNS, [_run_rows(store, recipe_hashes)]),
    ):
        path = out / f"{name}.parquet"
        written.append((path, _write(path, columns, batches)))
    return written
