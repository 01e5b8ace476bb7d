"""The results and predictions tables: a finished job's final metrics and per-example probabilities.

A prediction row holds `prob`, P(class 1) for two-way tasks (binary, pairwise) and the argmax's
probability for K-class and choice tasks, whose full distribution per example (ragged for chess)
sits beside it in `dists` as JSON text (NULL for two-way tasks and for jobs stored before it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from w2s_core.store.connection import StoreBase, sqlite_errors
from w2s_core.store.ingest import nan_if_none
from w2s_core.store.schema import SPLITS

# Every table keyed by job_hash that a job's run fills; emptied before the job runs again.
OUTPUT_TABLES = ("metrics", "results", "predictions", "ingest")


class Outputs(StoreBase):
    """A job's final results and predictions, and forgetting them before a retry."""

    @sqlite_errors
    def reset_job_outputs(self, job_hash: str) -> None:
        """Forget a job's metrics, results, predictions and ingest offsets before it runs again."""
        with self.transaction() as conn:
            for table in OUTPUT_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE job_hash = ?", (job_hash,))

    @sqlite_errors
    def set_results(self, job_hash: str, values: dict[str, Any]) -> None:
        """Merge final metrics into the job's results (a key given again is overwritten).

        The table holds numbers: a null (a figure the job could not measure, e.g. an oracle
        without eval points) is kept as NULL and read back as NaN; anything else that is not a
        number (text, lists) is left out here and stays in the job's result.json.
        """
        kept = [
            (job_hash, k, None if v is None else float(v))
            for k, v in values.items()
            if v is None or isinstance(v, (int, float))
        ]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO results (job_hash, key, value) VALUES (?, ?, ?)", kept)

    @sqlite_errors
    def results(self, job_hash: str) -> dict[str, float]:
        sql = "SELECT key, value FROM results WHERE job_hash = ? ORDER BY key"
        rows = self.db.query(sql, [job_hash])
        return {r["key"]: nan_if_none(r["value"]) for r in rows}

    @sqlite_errors
    def add_predictions(
        self,
        job_hash: str,
        split: str,
        probs: Sequence[float],
        labels: Sequence[int] | None = None,
        index: Sequence[int] | None = None,
        dists: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Replace the job's predictions on `split`; idx = the example's position in the drawn split.

        `index` gives those positions where long inputs were dropped (`[data] long_inputs = "drop"`,
        predictions.json's "index"); without it they are 0, 1, ... in order. `predictions` reads
        back only the stored rows, in position order, so metrics over them use the kept examples.
        `dists` (predictions.json's "dists", K-class and choice tasks) is each example's distribution,
        read back by `prediction_dists`.
        """
        if split not in SPLITS:
            raise ValueError(f"prediction split {split!r} must be one of {SPLITS}")
        for what, values in (("labels", labels), ("positions", index), ("distributions", dists)):
            if values is not None and len(values) != len(probs):
                raise ValueError(f"{len(probs)} probabilities but {len(values)} {what} for {job_hash}/{split}")
        label_values = [None] * len(probs) if labels is None else [int(x) for x in labels]
        positions = range(len(probs)) if index is None else [int(i) for i in index]
        dist_text = [None] * len(probs) if dists is None else [json.dumps([float(v) for v in d]) for d in dists]
        with self.transaction() as conn:
            conn.execute("DELETE FROM predictions WHERE job_hash = ? AND split = ?", (job_hash, split))
            conn.executemany(
                "INSERT INTO predictions (job_hash, split, idx, prob, label, dists) VALUES (?, ?, ?, ?, ?, ?)",
                [(job_hash, split, i, float(p), y, d) for i, p, y, d in zip(positions, probs, label_values, dist_text)],
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
        return [nan_if_none(r["prob"]) for r in rows], [r["label"] for r in rows]

    @sqlite_errors
    def prediction_dists(self, job_hash: str, split: str) -> list[list[float]] | None:
        """Each example's distribution in index order (as `predictions`), or None when the job stored none
        (a two-way task, whose distribution is [1 - p, p])."""
        rows = list(
            self.db.query(
                "SELECT dists FROM predictions WHERE job_hash = ? AND split = ? ORDER BY idx",
                [job_hash, split],
            )
        )
        if not rows or any(r["dists"] is None for r in rows):
            return None
        return [json.loads(r["dists"]) for r in rows]
