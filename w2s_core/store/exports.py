"""Read-only queries for the exports (`w2s export`, `w2s_core.analysis.export`): what the store's
methods leave out, one job at a time, so an export of a large database is written in batches.

`Store.predictions` gives a job's probabilities in position order without the positions; an export
needs them (with `[data] long_inputs = "drop"` they have gaps) and each example's distribution.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from w2s_core.store.connection import sqlite_errors
from w2s_core.store.ingest import nan_if_none

if TYPE_CHECKING:
    from w2s_core.store import Store

# (split, example position, label or None, probability, distribution or None)
PredictionTuple = tuple[str, int, "int | None", float, "list[float] | None"]


@sqlite_errors
def prediction_rows(store: Store, job_hash: str) -> list[PredictionTuple]:
    """A job's stored predictions on every split, by split then position: `prob` is P(class 1) of a
    two-way task (its distribution None: it is [1 - p, p]), the argmax's probability otherwise."""
    rows = store.db.execute(
        "SELECT split, idx, label, prob, dists FROM predictions WHERE job_hash = ? ORDER BY split, idx", [job_hash]
    )
    return [
        (split, idx, label, nan_if_none(prob), None if dists is None else json.loads(dists))
        for split, idx, label, prob, dists in rows
    ]
