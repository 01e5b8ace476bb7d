"""The SQLite store: one database per results directory, written by the manager, read by the TUI.

All SQL of w2s lives in this package, one module per concern:

    connection.py  open, WAL, busy timeout, transactions, `sqlite_errors` (StoreBase)
    schema.py      numbered migrations (`MIGRATIONS`), the version in PRAGMA user_version
    recipes.py     recipes and runs tables
    jobs.py        jobs and recipe_jobs tables
    ingest.py      events file -> metrics table, by byte offset
    outputs.py     results and predictions tables
    gpus.py        GPU samples (per GPU, per running job) and each job's peak memory and mean utilisation
    annotations.py tags on runs, jobs and recipes, and notes on runs (`w2s tag`, `w2s note`)
    queries.py     read-only queries across tables (the TUI's pages, analysis's input)
    exports.py     read-only rows for the Parquet export (predictions with their example index)
    rows.py        the TypedDicts the methods and queries return

`Store` is the facade the rest of w2s uses: `Store.open(results_dir)`, then its methods.
"""

from __future__ import annotations

from w2s_core.store.annotations import Annotations
from w2s_core.store.connection import DB_NAME, DEFAULT_RESULTS_DIR, sqlite_errors
from w2s_core.store.gpus import Gpus
from w2s_core.store.ingest import Ingest
from w2s_core.store.jobs import Jobs
from w2s_core.store.outputs import Outputs
from w2s_core.store.recipes import RecipesAndRuns

__all__ = ["DB_NAME", "DEFAULT_RESULTS_DIR", "Store", "sqlite_errors"]


class Store(RecipesAndRuns, Jobs, Ingest, Outputs, Gpus, Annotations):
    """One results directory's database. Build it with `Store.open`."""
