"""Analysis: from a results database to the numbers the paper reports.

    pgr.py         the PGR table (weak, w2s, ceiling, PGR and its interval per setup), the per-method
                   summary, chain steps
    estimators.py  the two PGR estimators: ours (mean of per-seed PGR) and the paper's (median)
    figures.py     a job's final, selected and oracle figures (older results too)
    stats.py       accuracy, AUROC, agreement, PGR, seed aggregation, sanity warnings (numpy only)
    table.py       the table as text for the CLI, and the labels the TUI shares

The names below load lazily (PEP 562), so `w2s_core.analysis.stats`, which a training job
imports, does not pull the store and SQLite into that process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from w2s_core.analysis.figures import FIGURES, METRICS
    from w2s_core.analysis.pgr import chain_steps, pgr_summary, pgr_table
    from w2s_core.analysis.table import ci_text, format_table, strong_label

_EXPORTS = {
    "METRICS": "figures",
    "FIGURES": "figures",
    "pgr_table": "pgr",
    "pgr_summary": "pgr",
    "chain_steps": "pgr",
    "ci_text": "table",
    "strong_label": "table",
    "format_table": "table",
}
__all__ = ["FIGURES", "METRICS", "chain_steps", "ci_text", "format_table", "pgr_summary", "pgr_table", "strong_label"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    except AttributeError as exc:  # else `from w2s_core.analysis import x` would hide it as "cannot import name"
        raise ImportError(f"loading {name} from {__name__}.{_EXPORTS[name]} failed: {exc}") from exc
    return getattr(module, name)
