"""Local data files (.jsonl, .json, .csv, .parquet): reading records, mapping columns, parsing labels.

The recipe's [data] table names the file (`path`) and, when they are not `text` and `label`, its
columns (`text_column`, `label_column`). Every error names the file and the recipe key to change.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from w2s_core.data.types import Example
from w2s_core.errors import InputError

LOCAL_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
_TRUE, _FALSE = ("1", "true"), ("0", "false")


def require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"Data file {path} does not exist (from the recipe's [data] path).")


def _json_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"Data file {path}, line {number}: not valid JSON ({exc}).") from exc


def columns(cfg: dict) -> dict[str, str]:
    """The recipe's column mapping, keyed by its config key (for error messages)."""
    return {
        "text_column": cfg.get("text_column") or "text",
        "label_column": cfg.get("label_column") or "label",
    }


def _parse(path: Path, suffix: str) -> tuple[Any, list[str] | None]:
    """The file's rows, and its column names when the format declares them (csv, parquet)."""
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # only for parquet files

        parquet = pq.read_table(path)
        return parquet.to_pylist(), parquet.schema.names
    with path.open(encoding="utf-8-sig", newline="") as f:
        if suffix == ".csv":
            reader = csv.DictReader(f)
            return list(reader), list(reader.fieldnames or [])
        if suffix == ".json":
            return json.load(f), None
        return [_json_line(path, n, line) for n, line in enumerate(f, 1) if line.strip()], None


def read_records(path: Path) -> tuple[list[dict], list[str]]:
    """Rows and column names of a local .jsonl/.json/.csv/.parquet file."""
    suffix = path.suffix.lower()
    if suffix not in LOCAL_EXTENSIONS:
        raise InputError(
            f"Data file {path} has an unsupported extension '{path.suffix}'; supported: {', '.join(LOCAL_EXTENSIONS)}."
        )
    require_file(path)
    try:
        rows, names = _parse(path, suffix)
    except InputError:
        raise
    except Exception as exc:  # malformed JSON/CSV/parquet: say which file
        raise InputError(f"Could not read data file {path}: {type(exc).__name__}: {exc}.") from exc
    if names is not None:
        return rows, names
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"Data file {path} must hold records: one JSON object per row.")
    return rows, list(dict.fromkeys(k for r in rows for k in r))


def binary_label(value: Any) -> int | None:
    """0/1, booleans, and "0"/"1"/"true"/"false" (any case) as an int label; None if not binary."""
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return int(value.strip().lower() in _TRUE)
    return None


def load_local(cfg: dict) -> list[Example]:
    """(text, label) for every row of the recipe's file, after checking its columns and labels."""
    path = Path(cfg["path"])
    rows, names = read_records(path)
    mapping = columns(cfg)
    for key, column in mapping.items():
        if column not in names:
            raise InputError(
                f"Data file {path} has no column '{column}' ({key} in the recipe's [data] table); "
                f"its columns are: {', '.join(map(str, names)) or '(none)'}."
            )
    text_col, label_col = mapping["text_column"], mapping["label_column"]
    labels = [binary_label(r.get(label_col)) for r in rows]
    bad = list(dict.fromkeys(repr(r.get(label_col)) for r, y in zip(rows, labels) if y is None))
    if bad:
        raise InputError(
            f"Data file {path}: labels must be binary (0/1, true/false), but column '{label_col}' "
            f"(label_column) has {len(bad)} other distinct value(s), e.g. {', '.join(bad[:5])}."
        )
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in rows]
    return list(zip(texts, labels))  # type: ignore[arg-type]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
