"""The recipes and runs tables: which recipe texts were planned, and each `w2s run` invocation."""

from __future__ import annotations

import json
import time
from pathlib import Path

from w2s_core.status import FINISHED_RUN, RunStatus
from w2s_core.store.connection import StoreBase, sqlite_errors
from w2s_core.store.rows import RecipeRow, RunRow

RUN_JSON_COLUMNS = frozenset({"argv", "provenance"})


def decode_json_columns(row: dict, json_columns: frozenset[str]) -> dict:
    return {k: json.loads(v) if k in json_columns and v is not None else v for k, v in row.items()}


class RecipesAndRuns(StoreBase):
    """Recording recipes and runs, and reading them back."""

    @sqlite_errors
    def add_recipe(self, recipe_hash: str, name: str, path: str | Path | None, text: str) -> None:
        """Record a recipe; re-adding it only refreshes its name and path (the file may move)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO recipes (hash, name, path, text, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (hash) DO UPDATE SET name = excluded.name, path = excluded.path",
                (recipe_hash, name, None if path is None else str(path), text, time.time()),
            )

    @sqlite_errors
    def recipes(self) -> list[RecipeRow]:
        return list(self.db.query("SELECT * FROM recipes ORDER BY created_at, hash"))  # type: ignore[arg-type]

    @sqlite_errors
    def start_run(
        self, recipe_hash: str | None, argv: list[str], provenance: dict, submission: str | None = None
    ) -> int:
        """Record one `w2s run` invocation as running; returns its id."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (recipe_hash, started_at, status, argv, provenance, submission) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    recipe_hash,
                    time.time(),
                    RunStatus.RUNNING.value,
                    json.dumps(argv),
                    json.dumps(provenance),
                    submission,
                ),
            )
        return int(cursor.lastrowid)

    @sqlite_errors
    def run_of_submission(self, submission: str) -> int | None:
        """The run a queued submission created, if it was applied already."""
        row = self.db.execute("SELECT id FROM runs WHERE submission = ?", [submission]).fetchone()
        return None if row is None else int(row[0])

    @sqlite_errors
    def finish_run(self, run_id: int, status: str) -> None:
        if status not in FINISHED_RUN:
            finished = tuple(s.value for s in RunStatus if s in FINISHED_RUN)
            raise ValueError(f"finish_run status {status!r} must be one of {finished}")
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, time.time(), run_id)
            )
            self._require_row(cursor, f"run {run_id}")

    @sqlite_errors
    def runs(self, status: str | None = None) -> list[RunRow]:
        where, params = ("", []) if status is None else (" WHERE status = ?", [status])
        rows = self.db.query(f"SELECT * FROM runs{where} ORDER BY id", params)
        return [decode_json_columns(r, RUN_JSON_COLUMNS) for r in rows]  # type: ignore[misc]
