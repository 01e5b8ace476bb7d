"""Opening a results database and writing to it safely: WAL, busy timeout, transactions, errors.

WAL mode lets a read-only TUI connection read while the manager writes; every write goes
through `transaction()` (BEGIN IMMEDIATE, so writers queue on `busy_timeout` instead of failing
with "database is locked"). `StoreBase` holds the connection; the table-family mixins of
`w2s_core.store.Store` build on it.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from w2s_core.errors import InputError, W2SError
from w2s_core.paths import writable_results_dir
from w2s_core.store import schema


def _import_sqlite_utils():
    """sqlite_utils, imported with pandas and numpy hidden when nothing has imported them yet.

    sqlite_utils imports both (0.3-0.5 s: most of a `w2s runs` or `w2s tui` start) only to map
    their scalar types in inserts; when the import fails it skips that, as it is written to. The
    store writes only Python values read from JSON and the process table, so it needs no mapping.
    pandas and numpy import normally afterwards for whoever needs them (the planner, analysis)."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # None makes `import name` raise ImportError
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

DB_NAME = "w2s.db"
DEFAULT_RESULTS_DIR = "w2s-results"
BUSY_TIMEOUT_MS = 5000

StoreT = TypeVar("StoreT", bound="StoreBase")


def explain(exc: sqlite3.Error) -> str:
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
    and for functions whose first argument is a Store, like the read queries)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise W2SError(
                f"The w2s results database {self.path} failed in {method.__name__}: {exc}. {explain(exc)}"
            ) from exc

    return wrapper


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """Explicit transactions only (isolation_level=None): every write goes through transaction()."""
    target = f"{path.as_uri()}?mode=ro" if readonly else str(path)
    conn = sqlite3.connect(target, uri=readonly, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def open_database(root: Path, readonly: bool) -> sqlite_utils.Database:
    """Connect to `root`'s database, creating and upgrading it unless readonly; errors name the file."""
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
        conn = connect(path, readonly)
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, much faster
        # Looked up at call time, so a test can swap in another list of migrations.
        schema.MIGRATIONS.apply(conn, path, readonly)
        return sqlite_utils.Database(conn, execute_plugins=False)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise W2SError(f"Cannot open the w2s results database {path}: {exc}. {explain(exc)}") from exc
        raise


class StoreBase:
    """One results directory's open database: the connection, transactions and path helpers."""

    def __init__(self, db: sqlite_utils.Database, root: Path, readonly: bool) -> None:
        self.db = db
        self.root = root
        self.path = root / DB_NAME
        self.readonly = readonly

    @classmethod
    def open(cls: type[StoreT], results_dir: str | Path = DEFAULT_RESULTS_DIR, readonly: bool = False) -> StoreT:
        """Open (and, unless readonly, create and upgrade) the database of `results_dir`."""
        root = Path(results_dir).expanduser().resolve()
        return cls(open_database(root, readonly), root, readonly)

    def close(self) -> None:
        self.db.close()

    def __enter__(self: StoreT) -> StoreT:
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

    def _relative(self, path: str | Path) -> str:
        """A path inside the results dir as text relative to it (relative input: to the root)."""
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{path} is outside the results directory {self.root}")
        return resolved.relative_to(self.root).as_posix()

    def _require_row(self, cursor: sqlite3.Cursor, what: str) -> None:
        if cursor.rowcount == 0:
            raise W2SError(f"There is no {what} in the w2s results database {self.path}.")
