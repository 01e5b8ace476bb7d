"""The metrics and ingest tables: a job's events file read incrementally by byte offset, and read back.

Each complete line of the events file (`w2s_core.jobdir.EVENTS`) becomes one metric row per
numeric field, keyed by (job, line index, key); the `step` field (`Event.STEP`) is the row's step,
not a metric. The ingest table remembers how far each file was read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from w2s_core.jobdir import Event
from w2s_core.store.connection import StoreBase, sqlite_errors
from w2s_core.store.rows import MetricRow

log = logging.getLogger(__name__)

MetricTuple = tuple[str, int, int | None, str, float]  # (job_hash, seq, step, key, value)


def nan_if_none(value: float | None) -> float:
    """SQLite stores a float NaN as NULL; give the NaN back."""
    return math.nan if value is None else value


def _parse_event_line(raw: bytes) -> dict | None:
    """One JSONL event, or None when the line is not a JSON object."""
    try:
        event = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return event if isinstance(event, dict) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_rows(job_hash: str, lines: list[bytes], first_seq: int) -> tuple[list[MetricTuple], int]:
    """The metric rows of complete lines numbered from `first_seq`, and how many lines were malformed."""
    rows: list[MetricTuple] = []
    bad = 0
    for seq, raw in enumerate(lines, start=first_seq):
        if not raw.strip():
            continue
        event = _parse_event_line(raw)
        if event is None:
            bad += 1
            continue
        step = event.get(Event.STEP)
        step = step if isinstance(step, int) and not isinstance(step, bool) else None
        rows += [(job_hash, seq, step, k, float(v)) for k, v in event.items() if k != Event.STEP and _is_number(v)]
    return rows, bad


def _read_after(path: Path, offset: int) -> tuple[bytes, bool]:
    """The bytes after `offset`, or the whole file (and True) when it is shorter: it was rewritten."""
    with open(path, "rb") as f:
        rewritten = os.fstat(f.fileno()).st_size < offset
        f.seek(0 if rewritten else offset)
        return f.read(), rewritten


class Ingest(StoreBase):
    """Reading a job's events file into the metrics table, and the metrics back."""

    @sqlite_errors
    def ingest_events(self, job_hash: str, path: str | Path) -> int:
        """Ingest the complete new lines of a job's events file; returns metric rows written.

        Resumes from the stored byte offset; a trailing partial line waits for the next call.
        Rows and the new offset commit together, and rows upsert on (job, seq, key), so a lost
        offset or a repeated call never duplicates. A file shorter than the offset was rewritten:
        the job's metrics are dropped and it is read again from the start. Relative paths are
        taken relative to the results directory.
        """
        file_path = (self.root / path).resolve()
        inside = file_path.is_relative_to(self.root)
        file_key = file_path.relative_to(self.root).as_posix() if inside else str(file_path)
        with self.transaction() as conn:
            state = conn.execute(
                'SELECT "offset", line, skipped FROM ingest WHERE job_hash = ? AND file = ?',
                (job_hash, file_key),
            ).fetchone()
            offset, line, skipped = state or (0, 0, 0)
            try:
                data, rewritten = _read_after(file_path, offset)
            except FileNotFoundError:
                return 0
            if rewritten:
                conn.execute("DELETE FROM metrics WHERE job_hash = ?", (job_hash,))
                offset, line, skipped = 0, 0, 0
            end = data.rfind(b"\n") + 1
            if end == 0 and not rewritten:
                return 0  # no new complete line: nothing to write (the supervisor asks every tick)
            lines = data[:end].split(b"\n")[:-1]
            rows, bad = _metric_rows(job_hash, lines, line)
            _write_metrics(conn, rows)
            conn.execute(
                'INSERT OR REPLACE INTO ingest (job_hash, file, "offset", line, skipped) VALUES (?, ?, ?, ?, ?)',
                (job_hash, file_key, offset + end, line + len(lines), skipped + bad),
            )
        if bad:
            log.warning("skipped %d malformed line(s) in %s", bad, file_path)
        return len(rows)

    @sqlite_errors
    def metrics(self, job_hash: str, key: str | None = None) -> list[MetricRow]:
        """Rows {seq, step, key, value} in event order (NaN comes back as NaN)."""
        sql = "SELECT seq, step, key, value FROM metrics WHERE job_hash = ?"
        params: list[Any] = [job_hash]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        rows = self.db.query(sql + " ORDER BY seq, key", params)
        return [{**r, "value": nan_if_none(r["value"])} for r in rows]  # type: ignore[misc]


def _write_metrics(conn: sqlite3.Connection, rows: list[MetricTuple]) -> None:
    conn.executemany(
        "INSERT INTO metrics (job_hash, seq, step, key, value) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (job_hash, seq, key) DO UPDATE SET step = excluded.step, value = excluded.value",
        rows,
    )
