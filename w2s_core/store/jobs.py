"""The jobs and recipe_jobs tables: each planned job, its status and process, and the recipes using it."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from w2s_core.status import TERMINAL, JobStatus
from w2s_core.store.connection import StoreBase, sqlite_errors
from w2s_core.store.recipes import decode_json_columns
from w2s_core.store.rows import JobRow

JOB_JSON_COLUMNS = frozenset({"chain", "spec", "provenance", "launch"})


def _job_status(status: str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        raise ValueError(f"job status {status!r} must be one of {tuple(s.value for s in JobStatus)}") from None


class Jobs(StoreBase):
    """Planning jobs, moving them through their statuses, and reading them back."""

    @functools.cached_property
    def _job_columns(self) -> frozenset[str]:
        return frozenset(self.db["jobs"].columns_dict)

    @sqlite_errors
    def upsert_job(self, job: dict) -> None:
        """Insert the job, or update only the given columns of an existing one.

        `recipe_hash` keeps the first recipe that planned the job. A new job needs kind, model,
        seed and spec; its status defaults to 'planned'.
        """
        if "hash" not in job:
            raise ValueError("upsert_job needs the job's 'hash'")
        job_hash = job["hash"]
        fields = self._encode_job({k: v for k, v in job.items() if k != "hash"})
        with self.transaction() as conn:
            row = conn.execute("SELECT recipe_hash FROM jobs WHERE hash = ?", (job_hash,)).fetchone()
            if row is None:
                columns = ["hash", *fields]
                conn.execute(
                    f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [job_hash, *fields.values()],
                )
                return
            if row[0] is not None:
                fields.pop("recipe_hash", None)
            if fields:
                self._update_job(conn, job_hash, fields)

    @sqlite_errors
    def link_job(self, recipe_hash: str, job_hash: str, role: str) -> None:
        """Say that `recipe_hash` uses the job in `role` (idempotent)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO recipe_jobs (recipe_hash, job_hash, role) VALUES (?, ?, ?)",
                (recipe_hash, job_hash, role),
            )

    @sqlite_errors
    def set_job_status(self, job_hash: str, status: str, **fields: Any) -> None:
        """Move a job to `status`, also setting any other job columns given.

        'running' stamps started_at and clears the previous attempt's finished_at, exit_code and
        error; a terminal status stamps finished_at. Either clears why the job waited in the queue.
        Explicit fields win over these defaults.
        """
        status = _job_status(status)
        defaults: dict[str, Any] = {}
        if status == JobStatus.RUNNING:
            defaults = {
                "started_at": time.time(),
                "finished_at": None,
                "exit_code": None,
                "error": None,
                "signal": None,
                "wait_reason": None,
            }
        elif status in TERMINAL:
            defaults = {"finished_at": time.time(), "wait_reason": None}
        with self.transaction() as conn:
            self._update_job(conn, job_hash, self._encode_job({**defaults, **fields, "status": status.value}))

    @sqlite_errors
    def set_wait_reason(self, job_hash: str, reason: str | None) -> None:
        """Say why a queued job cannot start yet (not enough free GPUs or memory), or None: only its turn."""
        with self.transaction() as conn:
            self._update_job(conn, job_hash, {"wait_reason": reason})

    @sqlite_errors
    def requeue_job(self, job_hash: str, note: str) -> int:
        """Queue a job that stopped early to run again (it resumes from its checkpoint), counting it;
        `note` says why on the row (as `wait_reason`, until it starts). Returns its requeue count."""
        with self.transaction() as conn:
            self._update_job(conn, job_hash, {"status": JobStatus.QUEUED.value, "wait_reason": note})
            conn.execute("UPDATE jobs SET requeues = requeues + 1 WHERE hash = ?", (job_hash,))
            return conn.execute("SELECT requeues FROM jobs WHERE hash = ?", (job_hash,)).fetchone()[0]

    @sqlite_errors
    def count_requeue(self, job_hash: str) -> int:
        """Count a requeue the executor did itself (Slurm ran the same job again); returns the count."""
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET requeues = requeues + 1 WHERE hash = ?", (job_hash,))
            return conn.execute("SELECT requeues FROM jobs WHERE hash = ?", (job_hash,)).fetchone()[0]

    @sqlite_errors
    def has_queued(self, executor: str) -> bool:
        """Whether a queued job is to run on `executor` (its launch settings' `executor`, default local)."""
        row = self.db.execute(
            "SELECT 1 FROM jobs WHERE status = ? AND coalesce(json_extract(launch, '$.executor'), 'local') = ? LIMIT 1",
            (JobStatus.QUEUED.value, executor),
        ).fetchone()
        return row is not None

    @sqlite_errors
    def get_job(self, job_hash: str) -> JobRow | None:
        rows = list(self.db.query("SELECT * FROM jobs WHERE hash = ?", [job_hash]))
        return self._decode_job(rows[0]) if rows else None

    @sqlite_errors
    def jobs(
        self,
        recipe_hash: str | None = None,
        status: str | Sequence[str] | None = None,
        run_id: int | None = None,
    ) -> list[JobRow]:
        """Jobs in planning order, filtered by recipe (linked or first planner), status(es), run."""
        where, params = [], []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if recipe_hash is not None:
            where.append("(recipe_hash = ? OR hash IN (SELECT job_hash FROM recipe_jobs WHERE recipe_hash = ?))")
            params += [recipe_hash, recipe_hash]
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return [self._decode_job(r) for r in self.db.query(sql + " ORDER BY rowid", params)]

    def _encode_job(self, fields: dict) -> dict:
        """Check column names, JSON-encode the JSON columns, store `dir` relative to the root."""
        unknown = set(fields) - self._job_columns
        if unknown:
            known = sorted(self._job_columns)
            raise ValueError(f"unknown job columns {sorted(unknown)}; known: {known}")
        encoded = dict(fields)
        for column in JOB_JSON_COLUMNS & set(fields):
            if fields[column] is not None:
                encoded[column] = json.dumps(fields[column])
        if fields.get("dir") is not None:
            encoded["dir"] = self._relative(fields["dir"])
        return encoded

    def _decode_job(self, row: dict) -> JobRow:
        job = decode_json_columns(row, JOB_JSON_COLUMNS)
        if job["dir"] is not None:
            job["dir"] = str(self.root / job["dir"])
        return job  # type: ignore[return-value]

    def _update_job(self, conn: sqlite3.Connection, job_hash: str, fields: dict) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)
        cursor = conn.execute(f"UPDATE jobs SET {assignments} WHERE hash = ?", [*fields.values(), job_hash])
        self._require_row(cursor, f"job {job_hash}")
