"""The SQLite store: one database per results directory, written by the manager, read by the TUI.

WAL mode lets a read-only TUI connection read while the manager writes; every write goes
through `Store.transaction()` (BEGIN IMMEDIATE, so writers queue on `busy_timeout` instead of
failing with "database is locked"). The schema is versioned with `PRAGMA user_version`.
Timestamps are Unix seconds (REAL); job folders are stored relative to the results directory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from w2s_core.errors import InputError, W2SError
from w2s_core.paths import writable_results_dir

DB_NAME = "w2s.db"
DEFAULT_RESULTS_DIR = "w2s-results"
BUSY_TIMEOUT_MS = 5000
RUN_STATUSES = ("running", "done", "failed", "interrupted")
FINISHED_RUN_STATUSES = RUN_STATUSES[1:]
# "skipped": never started because an upstream job failed.
JOB_STATUSES = ("planned", "queued", "running", "done", "failed", "cancelled", "skipped")
JOB_KINDS = ("gt", "transfer", "bootstrap")
SPLITS = ("test", "A", "B")
JOB_JSON_COLUMNS = frozenset({"chain", "spec", "provenance", "launch"})
RUN_JSON_COLUMNS = frozenset({"argv", "provenance"})
TERMINAL_JOB_STATUSES = frozenset({"done", "failed", "cancelled", "skipped"})

log = logging.getLogger(__name__)


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_SCHEMA_V1 = [
    """CREATE TABLE recipes (
        hash TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT, text TEXT NOT NULL,
        created_at REAL NOT NULL)""",
    f"""CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, recipe_hash TEXT, started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ({_in(RUN_STATUSES)})),
        argv TEXT, provenance TEXT)""",
    "CREATE INDEX runs_recipe ON runs (recipe_hash)",
    f"""CREATE TABLE jobs (
        hash TEXT PRIMARY KEY, recipe_hash TEXT, run_id INTEGER,
        kind TEXT NOT NULL CHECK (kind IN ({_in(JOB_KINDS)})),
        model TEXT NOT NULL, weak_model TEXT, loss TEXT, seed INTEGER NOT NULL, chain TEXT,
        step INTEGER, spec TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'planned' CHECK (status IN ({_in(JOB_STATUSES)})),
        pid INTEGER, exit_code INTEGER, started_at REAL, finished_at REAL, dir TEXT,
        error TEXT, provenance TEXT)""",
    "CREATE INDEX jobs_status ON jobs (status)",
    "CREATE INDEX jobs_recipe ON jobs (recipe_hash)",
    """CREATE TABLE recipe_jobs (
        recipe_hash TEXT NOT NULL, job_hash TEXT NOT NULL, role TEXT NOT NULL,
        PRIMARY KEY (recipe_hash, job_hash, role)) WITHOUT ROWID""",
    "CREATE INDEX recipe_jobs_job ON recipe_jobs (job_hash)",
    """CREATE TABLE metrics (
        job_hash TEXT NOT NULL, seq INTEGER NOT NULL, step INTEGER, key TEXT NOT NULL,
        value REAL, PRIMARY KEY (job_hash, seq, key)) WITHOUT ROWID""",
    "CREATE INDEX metrics_key ON metrics (job_hash, key, seq)",
    """CREATE TABLE results (
        job_hash TEXT NOT NULL, key TEXT NOT NULL, value REAL,
        PRIMARY KEY (job_hash, key)) WITHOUT ROWID""",
    f"""CREATE TABLE predictions (
        job_hash TEXT NOT NULL, split TEXT NOT NULL CHECK (split IN ({_in(SPLITS)})),
        idx INTEGER NOT NULL, prob REAL, label INTEGER,
        PRIMARY KEY (job_hash, split, idx)) WITHOUT ROWID""",
    """CREATE TABLE ingest (
        job_hash TEXT NOT NULL, file TEXT NOT NULL, "offset" INTEGER NOT NULL,
        line INTEGER NOT NULL, skipped INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_hash, file)) WITHOUT ROWID""",
]


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """The initial schema. Migrations are frozen SQL: never edit one, append a new one."""
    for statement in _SCHEMA_V1:
        conn.execute(statement)


_SCHEMA_V2 = [
    # supervision: who runs a job (pid + process group + start time identify it across restarts),
    # on which device, with which code snapshot and launch settings, and how it ended
    "ALTER TABLE jobs ADD COLUMN pgid INTEGER",
    "ALTER TABLE jobs ADD COLUMN proc_start REAL",
    "ALTER TABLE jobs ADD COLUMN device TEXT",
    "ALTER TABLE jobs ADD COLUMN signal INTEGER",
    "ALTER TABLE jobs ADD COLUMN code TEXT",
    "ALTER TABLE jobs ADD COLUMN launch TEXT",
    "ALTER TABLE jobs ADD COLUMN queued_at REAL",
    # a queued submission is applied once, even if the supervisor dies right after applying it
    "ALTER TABLE runs ADD COLUMN submission TEXT",
    "CREATE UNIQUE INDEX runs_submission ON runs (submission)",
]


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Detached runs and the queue (frozen like every migration)."""
    for statement in _SCHEMA_V2:
        conn.execute(statement)


# MIGRATIONS[i] takes a database from schema version i to i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2]


def schema_version() -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS)


def _explain(exc: sqlite3.Error) -> str:
    """A hint a user can act on for the sqlite errors that happen in practice."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return "The file is damaged or is not a w2s database; move it aside to start a fresh one."
    if "locked" in text or "busy" in text:
        return f"Another process kept it locked for more than {BUSY_TIMEOUT_MS // 1000} s; retry."
    if "readonly" in text or "unable to open" in text:
        return "Check that the file and its folder exist and are writable."
    if "disk" in text or "full" in text:
        return "Check the free space on that disk."
    return "This is likely a bug in w2s; please report it with this message."


def sqlite_errors(method: Callable) -> Callable:
    """Turn a raw sqlite3 error into one W2SError paragraph naming the database (for Store methods,
    and for functions whose first argument is a Store, like the browse queries)."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise W2SError(
                f"The w2s results database {self.path} failed in {method.__name__}: {exc}. "
                f"{_explain(exc)}"
            ) from exc

    return wrapper


def _decode(row: dict, json_columns: frozenset[str]) -> dict:
    return {k: json.loads(v) if k in json_columns and v is not None else v for k, v in row.items()}


def _nan_if_none(value: float | None) -> float:
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


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """Explicit transactions only (isolation_level=None): every write goes through transaction()."""
    target = f"{path.as_uri()}?mode=ro" if readonly else str(path)
    conn = sqlite3.connect(target, uri=readonly, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


class Store:
    """One results directory's database. Build it with `Store.open`."""

    def __init__(self, db: sqlite_utils.Database, root: Path, readonly: bool) -> None:
        self.db = db
        self.root = root
        self.path = root / DB_NAME
        self.readonly = readonly
        self._job_columns = frozenset(db["jobs"].columns_dict)

    @classmethod
    def open(cls, results_dir: str | Path = DEFAULT_RESULTS_DIR, readonly: bool = False) -> Store:
        """Open (and, unless readonly, create and upgrade) the database of `results_dir`."""
        root = Path(results_dir).expanduser().resolve()
        path = root / DB_NAME
        if readonly and not path.is_file():
            raise InputError(
                f"There is no w2s results database at {path}. Pass the results directory "
                "that `w2s run` wrote to (it holds w2s.db)."
            )
        if not readonly:
            writable_results_dir(root)
        conn = None
        try:
            conn = _connect(path, readonly)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
            _check_and_migrate(conn, path, readonly)
            return cls(sqlite_utils.Database(conn, execute_plugins=False), root, readonly)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise W2SError(
                    f"Cannot open the w2s results database {path}: {exc}. {_explain(exc)}"
                ) from exc
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes; nests with savepoints. BEGIN IMMEDIATE waits on busy_timeout."""
        if self.readonly:
            raise W2SError(f"The w2s results database {self.path} was opened read-only; cannot write.")
        conn = self.db.conn
        nested = conn.in_transaction
        savepoint = f"w2s_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {savepoint}" if nested else "BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute(f"RELEASE {savepoint}" if nested else "COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {savepoint}" if nested else "ROLLBACK")
                if nested:
                    conn.execute(f"RELEASE {savepoint}")
            raise

    # -- recipes and runs -------------------------------------------------------------------

    @sqlite_errors
    def add_recipe(self, hash: str, name: str, path: str | Path | None, text: str) -> None:
        """Record a recipe; re-adding it only refreshes its name and path (the file may move)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO recipes (hash, name, path, text, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (hash) DO UPDATE SET name = excluded.name, path = excluded.path",
                (hash, name, None if path is None else str(path), text, time.time()),
            )

    @sqlite_errors
    def start_run(self, recipe_hash: str | None, argv: list[str], provenance: dict,
                  submission: str | None = None) -> int:
        """Record one `w2s run` invocation as running; returns its id."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (recipe_hash, started_at, status, argv, provenance, submission) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (recipe_hash, time.time(), json.dumps(argv), json.dumps(provenance), submission),
            )
        return int(cursor.lastrowid)

    @sqlite_errors
    def run_of_submission(self, submission: str) -> int | None:
        """The run a queued submission created, if it was applied already."""
        row = self.db.execute("SELECT id FROM runs WHERE submission = ?", [submission]).fetchone()
        return None if row is None else int(row[0])

    @sqlite_errors
    def finish_run(self, run_id: int, status: str) -> None:
        if status not in FINISHED_RUN_STATUSES:
            raise ValueError(f"finish_run status {status!r} must be one of {FINISHED_RUN_STATUSES}")
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, time.time(), run_id)
            )
            self._require_row(cursor, f"run {run_id}")

    @sqlite_errors
    def runs(self, status: str | None = None) -> list[dict]:
        where, params = ("", []) if status is None else (" WHERE status = ?", [status])
        return [_decode(r, RUN_JSON_COLUMNS) for r in self.db.query(f"SELECT * FROM runs{where} ORDER BY id", params)]

    @sqlite_errors
    def recipes(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM recipes ORDER BY created_at, hash"))

    # -- jobs ---------------------------------------------------------------------------------

    @sqlite_errors
    def upsert_job(self, job: dict) -> None:
        """Insert the job, or update only the given columns of an existing one.

        `recipe_hash` keeps the first recipe that planned the job. A new job needs kind, model,
        seed and spec; its status defaults to 'planned'.
        """
        if "hash" not in job:
            raise ValueError("upsert_job needs the job's 'hash'")
        fields = self._encode_job({k: v for k, v in job.items() if k != "hash"})
        with self.transaction() as conn:
            row = conn.execute("SELECT recipe_hash FROM jobs WHERE hash = ?", (job["hash"],)).fetchone()
            if row is None:
                columns = ["hash", *fields]
                conn.execute(
                    f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [job["hash"], *fields.values()],
                )
                return
            if row[0] is not None:
                fields.pop("recipe_hash", None)
            if fields:
                self._update_job(conn, job["hash"], fields)

    @sqlite_errors
    def link_job(self, recipe_hash: str, job_hash: str, role: str) -> None:
        """Say that `recipe_hash` uses the job in `role` (idempotent)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO recipe_jobs (recipe_hash, job_hash, role) VALUES (?, ?, ?)",
                (recipe_hash, job_hash, role),
            )

    @sqlite_errors
    def set_job_status(self, hash: str, status: str, **fields: Any) -> None:
        """Move a job to `status`, also setting any other job columns given.

        'running' stamps started_at and clears the previous attempt's finished_at, exit_code and
        error; a terminal status stamps finished_at. Explicit fields win over these defaults.
        """
        if status not in JOB_STATUSES:
            raise ValueError(f"job status {status!r} must be one of {JOB_STATUSES}")
        defaults: dict[str, Any] = {}
        if status == "running":
            defaults = {"started_at": time.time(), "finished_at": None, "exit_code": None, "error": None,
                        "signal": None}
        elif status in TERMINAL_JOB_STATUSES:
            defaults = {"finished_at": time.time()}
        with self.transaction() as conn:
            self._update_job(conn, hash, self._encode_job({**defaults, **fields, "status": status}))

    @sqlite_errors
    def get_job(self, hash: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM jobs WHERE hash = ?", [hash]))
        return self._decode_job(rows[0]) if rows else None

    @sqlite_errors
    def jobs(
        self, recipe_hash: str | None = None, status: str | Sequence[str] | None = None,
        run_id: int | None = None,
    ) -> list[dict]:
        """Jobs in planning order, filtered by recipe (linked or first planner), status(es), run."""
        where, params = [], []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if recipe_hash is not None:
            where.append(
                "(recipe_hash = ? OR hash IN (SELECT job_hash FROM recipe_jobs WHERE recipe_hash = ?))"
            )
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

    def _decode_job(self, row: dict) -> dict:
        job = _decode(row, JOB_JSON_COLUMNS)
        if job["dir"] is not None:
            job["dir"] = str(self.root / job["dir"])
        return job

    def _update_job(self, conn: sqlite3.Connection, hash: str, fields: dict) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)
        cursor = conn.execute(f"UPDATE jobs SET {assignments} WHERE hash = ?", [*fields.values(), hash])
        self._require_row(cursor, f"job {hash}")

    def _relative(self, path: str | Path) -> str:
        """A path inside the results dir as text relative to it (relative input: to the root)."""
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{path} is outside the results directory {self.root}")
        return resolved.relative_to(self.root).as_posix()

    def _require_row(self, cursor: sqlite3.Cursor, what: str) -> None:
        if cursor.rowcount == 0:
            raise W2SError(f"There is no {what} in the w2s results database {self.path}.")

    # -- events, metrics, results, predictions ------------------------------------------------

    @sqlite_errors
    def ingest_events(self, job_hash: str, path: str | Path) -> int:
        """Ingest the complete new lines of a job's events.jsonl; returns metric rows written.

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
                with open(file_path, "rb") as f:
                    if os.fstat(f.fileno()).st_size < offset:
                        conn.execute("DELETE FROM metrics WHERE job_hash = ?", (job_hash,))
                        offset, line, skipped = 0, 0, 0
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                return 0
            end = data.rfind(b"\n") + 1
            lines = data[:end].split(b"\n")[:-1]
            rows, bad = [], 0
            for seq, raw in enumerate(lines, start=line):
                if not raw.strip():
                    continue
                event = _parse_event_line(raw)
                if event is None:
                    bad += 1
                    continue
                step = event.get("step")
                step = step if isinstance(step, int) and not isinstance(step, bool) else None
                rows += [
                    (job_hash, seq, step, k, float(v))
                    for k, v in event.items()
                    if k != "step" and _is_number(v)
                ]
            conn.executemany(
                "INSERT INTO metrics (job_hash, seq, step, key, value) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (job_hash, seq, key) "
                "DO UPDATE SET step = excluded.step, value = excluded.value",
                rows,
            )
            conn.execute(
                'INSERT OR REPLACE INTO ingest (job_hash, file, "offset", line, skipped) '
                "VALUES (?, ?, ?, ?, ?)",
                (job_hash, file_key, offset + end, line + len(lines), skipped + bad),
            )
        if bad:
            log.warning("skipped %d malformed line(s) in %s", bad, file_path)
        return len(rows)

    @sqlite_errors
    def reset_job_outputs(self, job_hash: str) -> None:
        """Forget a job's metrics, results, predictions and ingest offsets before it runs again."""
        with self.transaction() as conn:
            for table in ("metrics", "results", "predictions", "ingest"):
                conn.execute(f"DELETE FROM {table} WHERE job_hash = ?", (job_hash,))

    @sqlite_errors
    def metrics(self, job_hash: str, key: str | None = None) -> list[dict]:
        """Rows {seq, step, key, value} in event order (NaN comes back as NaN)."""
        sql = "SELECT seq, step, key, value FROM metrics WHERE job_hash = ?"
        params: list[Any] = [job_hash]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        rows = self.db.query(sql + " ORDER BY seq, key", params)
        return [{**r, "value": _nan_if_none(r["value"])} for r in rows]

    @sqlite_errors
    def set_results(self, job_hash: str, values: dict[str, float]) -> None:
        """Merge final metrics into the job's results (a key given again is overwritten)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO results (job_hash, key, value) VALUES (?, ?, ?)",
                [(job_hash, k, float(v)) for k, v in values.items()],
            )

    @sqlite_errors
    def results(self, job_hash: str) -> dict[str, float]:
        sql = "SELECT key, value FROM results WHERE job_hash = ? ORDER BY key"
        rows = self.db.query(sql, [job_hash])
        return {r["key"]: _nan_if_none(r["value"]) for r in rows}

    @sqlite_errors
    def add_predictions(
        self, job_hash: str, split: str, probs: Sequence[float], labels: Sequence[int] | None = None
    ) -> None:
        """Replace the job's predictions on `split` (idx = position in `probs`)."""
        if split not in SPLITS:
            raise ValueError(f"prediction split {split!r} must be one of {SPLITS}")
        if labels is not None and len(labels) != len(probs):
            raise ValueError(
                f"{len(probs)} probabilities but {len(labels)} labels for {job_hash}/{split}"
            )
        label_values = [None] * len(probs) if labels is None else [int(x) for x in labels]
        with self.transaction() as conn:
            conn.execute("DELETE FROM predictions WHERE job_hash = ? AND split = ?", (job_hash, split))
            conn.executemany(
                "INSERT INTO predictions (job_hash, split, idx, prob, label) VALUES (?, ?, ?, ?, ?)",
                [(job_hash, split, i, float(p), y) for i, (p, y) in enumerate(zip(probs, label_values))],
            )

    @sqlite_errors
    def predictions(self, job_hash: str, split: str) -> tuple[list[float], list[int | None]]:
        """(probs, labels) in index order; labels are None where none were stored."""
        rows = list(
            self.db.query(
                "SELECT prob, label FROM predictions WHERE job_hash = ? AND split = ? ORDER BY idx",
                [job_hash, split],
            )
        )
        return [_nan_if_none(r["prob"]) for r in rows], [r["label"] for r in rows]


def _check_and_migrate(conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
    """Refuse a newer schema; bring an older one up to date in one transaction (never readonly)."""
    target = schema_version()
    if not readonly:
        conn.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock: one migrator wins
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > target:
            raise W2SError(
                f"The w2s results database {path} has schema version {version}, newer than the "
                f"version {target} this w2s understands. Upgrade w2s to use it."
            )
        if version < target and readonly:
            raise W2SError(
                f"The w2s results database {path} has schema version {version}, older than {target}"
                f"{' (or a w2s that writes is creating it right now: retry in a moment)' if version == 0 else ''}. "
                "Open it once with a w2s command that writes (such as `w2s run`) to upgrade it."
            )
        for migration in MIGRATIONS[version:]:
            migration(conn)
        if version < target:
            conn.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if conn.in_transaction:
        conn.execute("COMMIT")
