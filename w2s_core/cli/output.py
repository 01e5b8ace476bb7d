"""How the CLI prints what the library returns: JSON without NaN, CSV of flat rows, local time stamps."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from typing import Any

# Nested columns of a PGR row that a CSV cell cannot hold (they are in --json); a grid's `grid` is also
# one flat column per swept key (`lr`, `alpha`), so a recipe without lists keeps its CSV columns.
NESTED_COLUMNS = ("per_seed", "warnings", "grid")


def json_safe(obj: Any) -> Any:
    """NaN is not JSON: an undefined figure (e.g. a one-seed interval) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """Indented JSON for the terminal and for scripts (`default=str` for paths and the like)."""
    return json.dumps(json_safe(obj), indent=1, default=str)


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV with a header, nested columns left out."""
    out = io.StringIO()
    flat = [{k: v for k, v in r.items() if k not in NESTED_COLUMNS} for r in rows]
    # every row's columns, in the order first seen: grid rows may differ (an xent row has no alpha)
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in flat for k in r)) or ["recipe"])
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"
