"""The database schema as an ordered list of numbered migrations, applied in one transaction.

The pattern is sqlite-migrate's: each migration is a function registered on `MIGRATIONS` in
order; migration N takes a database from schema version N - 1 to N, and the version reached is
recorded in `PRAGMA user_version`. Migrations are frozen: never edit one, append a new one.
Timestamps are Unix seconds (REAL); job folders are stored relative to the results directory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from w2s_core.errors import W2SError
from w2s_core.status import JobStatus, RunStatus

_V1_JOB_KINDS = ("gt", "transfer", "bootstrap")  # the first schema's CHECK list (m001 is frozen)
JOB_KINDS = (*_V1_JOB_KINDS, "prompt", "generative")  # issue 10: stages (m004)
SPLITS = ("test", "A", "B")

Migration = Callable[[sqlite3.Connection], None]


class Migrations:
    """Numbered schema migrations; `apply` brings a database up to `version` or refuses it."""

    def __init__(self, steps: Iterable[Migration] = ()) -> None:
        self.steps: list[Migration] = list(steps)

    def __call__(self, migration: Migration) -> Migration:
        """Register the next migration (use as a decorator)."""
        self.steps.append(migration)
        return migration

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def version(self) -> int:
        """The schema version these migrations reach."""
        return len(self.steps)

    def apply(self, conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
        """Refuse a newer schema; bring an older one up to date in one transaction (never readonly)."""
        target = self.version
        if not readonly:
            conn.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock: one migrator wins
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            _check_version(path, version, target, readonly)
            for migration in self.steps[version:]:
                migration(conn)
            if version < target:
                conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if conn.in_transaction:
            conn.execute("COMMIT")


def _check_version(path: Path, version: int, target: int, readonly: bool) -> None:
    if version > target:
        raise W2SError(
            f"The w2s results database {path} has schema version {version}, newer than the "
            f"version {target} this w2s understands. Upgrade w2s to use it."
        )
    if version < target and readonly:
        creating = " (or a w2s that writes is creating it right now: retry in a moment)" if version == 0 else ""
        raise W2SError(
            f"The w2s results database {path} has schema version {version}, older than {target}{creating}. "
            "Open it once with a w2s command that writes (such as `w2s run`) to upgrade it."
        )


MIGRATIONS = Migrations()


def schema_version() -> int:
    """The schema version this code writes."""
    return MIGRATIONS.version


def _in(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# The CHECK lists come from the enums, whose values and order are those the first schema spelled
# out. SQLite cannot alter a CHECK: a new status needs a migration that rebuilds the table.
_RUN_STATUSES = _in(s.value for s in RunStatus)
_JOB_STATUSES = _in(s.value for s in JobStatus)

_SCHEMA_V1 = [
    """CREATE TABLE recipes (
        hash TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT, text TEXT NOT NULL,
        created_at REAL NOT NULL)""",
    f"""CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, recipe_hash TEXT, started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ({_RUN_STATUSES})),
        argv TEXT, provenance TEXT)""",
    "CREATE INDEX runs_recipe ON runs (recipe_hash)",
    f"""CREATE TABLE jobs (
        hash TEXT PRIMARY KEY, recipe_hash TEXT, run_id INTEGER,
        kind TEXT NOT NULL CHECK (kind IN ({_in(_V1_JOB_KINDS)})),
        model TEXT NOT NULL, weak_model TEXT, loss TEXT, seed INTEGER NOT NULL, chain TEXT,
        step INTEGER, spec TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'planned' CHECK (status IN ({_JOB_STATUSES})),
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


@MIGRATIONS
def m001_initial_schema(conn: sqlite3.Connection) -> None:
    """Recipes, runs, jobs, the recipe-job links, metrics, results, predictions, ingest offsets."""
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


@MIGRATIONS
def m002_detached_runs_and_queue(conn: sqlite3.Connection) -> None:
    """Detached runs and the queue."""
    for statement in _SCHEMA_V2:
        conn.execute(statement)


@MIGRATIONS
def m003_prediction_dists(conn: sqlite3.Connection) -> None:
    """Per-example distributions (JSON text) for K-class and choice tasks; NULL for two-way tasks."""
    conn.execute("ALTER TABLE predictions ADD COLUMN dists TEXT")


@MIGRATIONS
def m004_stage_job_kinds(conn: sqlite3.Connection) -> None:
    """Prompting and generative-finetuning jobs (issue 10): the jobs table's kind CHECK gains them. SQLite
    cannot alter a CHECK, so the table is rebuilt from its own definition, rowids kept (planning order)."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()[0]
    old_check, new_check = f"kind IN ({_in(_V1_JOB_KINDS)})", f"kind IN ({_in(JOB_KINDS)})"
    if old_check not in sql:
        raise W2SError(f"unexpected jobs table definition, cannot add job kinds: {sql}")
    conn.execute(sql.replace(old_check, new_check).replace("CREATE TABLE jobs", "CREATE TABLE jobs_m004", 1))
    columns = ", ".join(f'"{row[1]}"' for row in conn.execute("PRAGMA table_info(jobs)"))
    conn.execute(f"INSERT INTO jobs_m004 (rowid, {columns}) SELECT rowid, {columns} FROM jobs")
    conn.execute("DROP TABLE jobs")
    conn.execute("ALTER TABLE jobs_m004 RENAME TO jobs")
    conn.execute("CREATE INDEX jobs_status ON jobs (status)")
    conn.execute("CREATE INDEX jobs_recipe ON jobs (recipe_hash)")


_SCHEMA_V5 = [
    # what each GPU showed at each sample (t: Unix seconds, one t per sampling pass); pruned by age
    """CREATE TABLE gpu_samples (
        t REAL NOT NULL, gpu INTEGER NOT NULL, name TEXT, util_pct REAL, mem_used_mb REAL NOT NULL,
        mem_total_mb REAL NOT NULL, temp_c REAL, power_w REAL, PRIMARY KEY (t, gpu)) WITHOUT ROWID""",
    # the memory a running job's processes held on one GPU at a sample, and that GPU's utilisation
    """CREATE TABLE gpu_job_samples (
        job_hash TEXT NOT NULL, t REAL NOT NULL, gpu INTEGER NOT NULL, mem_mb REAL NOT NULL, util_pct REAL,
        PRIMARY KEY (job_hash, t, gpu)) WITHOUT ROWID""",
    "CREATE INDEX gpu_job_samples_t ON gpu_job_samples (t)",
    # running aggregates over a job's latest attempt (since = its started_at): kept when samples are pruned
    """CREATE TABLE gpu_job_stats (
        job_hash TEXT PRIMARY KEY, since REAL NOT NULL, last_t REAL NOT NULL, samples INTEGER NOT NULL,
        peak_mb REAL NOT NULL, util_sum REAL NOT NULL, util_n INTEGER NOT NULL) WITHOUT ROWID""",
]


@MIGRATIONS
def m005_gpu_samples(conn: sqlite3.Connection) -> None:
    """GPU samples the supervisor takes through NVML (issue 11): per GPU, per running job, per-job aggregates."""
    for statement in _SCHEMA_V5:
        conn.execute(statement)


@MIGRATIONS
def m006_job_wait_reason(conn: sqlite3.Connection) -> None:
    """Why a queued job waits (issue 11: not enough free GPUs or GPU memory for its [launch] needs);
    NULL while it waits only for its turn, cleared when it starts."""
    conn.execute("ALTER TABLE jobs ADD COLUMN wait_reason TEXT")


_SCHEMA_V7 = [
    # issue 12, executors (w2s_core.supervision.executors): which one runs the job ("local", "slurm"; NULL:
    # local, as every job before), its Slurm job id and last Slurm state ("PENDING", "RUNNING", ...)
    "ALTER TABLE jobs ADD COLUMN executor TEXT",
    "ALTER TABLE jobs ADD COLUMN slurm_job_id TEXT",
    "ALTER TABLE jobs ADD COLUMN slurm_state TEXT",
    # times the job was queued again after its trainer stopped on a signal with a checkpoint (EXIT_REQUEUE)
    # or Slurm preempted it: bounded, so a job that never gets further is failed rather than run forever
    "ALTER TABLE jobs ADD COLUMN requeues INTEGER NOT NULL DEFAULT 0",
]


@MIGRATIONS
def m007_executor(conn: sqlite3.Connection) -> None:
    """The executor of each job, its Slurm job id and state, and how often it was requeued (issue 12)."""
    for statement in _SCHEMA_V7:
        conn.execute(statement)


_SCHEMA_V8 = [
    # issue 13: labels a user puts on what is recorded. `target` is the run id (as text), the full job hash or
    # the recipe hash, by `kind`; a tag is one word (store/annotations.py checks it). No foreign keys: a tag
    # outlives nothing it names, as nothing recorded is ever deleted.
    """CREATE TABLE tags (
        kind TEXT NOT NULL CHECK (kind IN ('run', 'job', 'recipe')), target TEXT NOT NULL, tag TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (kind, target, tag)) WITHOUT ROWID""",
    "CREATE INDEX tags_tag ON tags (tag)",
    # free-text notes on a run, oldest first by id ("notes" would collide with tables tests create)
    """CREATE TABLE run_notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, text TEXT NOT NULL,
        created_at REAL NOT NULL)""",
    "CREATE INDEX run_notes_run ON run_notes (run_id, id)",
]


@MIGRATIONS
def m008_tags_and_notes(conn: sqlite3.Connection) -> None:
    """Tags on runs, jobs and recipes, and notes on runs (issue 13: `w2s tag`, `w2s untag`, `w2s note`)."""
    for statement in _SCHEMA_V8:
        conn.execute(statement)
