"""Local data files (.jsonl, .json, .csv, .parquet): reading records, mapping columns, parsing labels.

The recipe's [data] table names the file (`path`) and, when they are not `text` and `label`, its
columns (`text_column`, `label_column`). Every error names the file and the recipe key to change.
Pairwise files are read by `pairwise.py` and Lichess puzzle files by `puzzles.py`.

Labels (`kind = "classify"`) take K >= 2 values. When every value is binary (0/1, booleans,
"0"/"1"/"true"/"false" in any case) they map as they always did (`binary_label`) and K = 2, so
existing files keep their labels and fingerprints. Otherwise the values must be of one type: ints
(or strings that spell ints, as CSV files hold them) that are exactly 0..K-1 stay as they are;
other ints must be consecutive (1..5 stars, -1..1) and, like strings, become the index of their
value among the file's sorted distinct values (so 1..5 gives 0..4 and "neg" < "neutral" < "pos"
gives 0, 1, 2). Integer labels with a gap (0 and 7; 0, 1, 3) are an InputError: a gap is a missing
class or a typo, and silently renumbering it would hide that. K comes from the whole file, so
every split of it has the same classes.
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


def _class_value(value: Any) -> int | str | None:
    """A non-binary label value as an int or a string; None for what cannot be a class (missing,
    booleans next to other values, fractions)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)  # CSV files hold every label as a string
        except ValueError:
            return text
    return None


def class_labels(path: Path, label_col: str, values: list[Any]) -> tuple[list[int], int]:
    """Labels 0..K-1 of one label column and K (see the module docstring for the mapping)."""
    binary = [binary_label(v) for v in values]
    if all(y is not None for y in binary):
        return binary, 2  # type: ignore[return-value]
    keys = [_class_value(v) for v in values]
    types = {type(k) for k in keys if k is not None}
    if None in keys or len(types) > 1:
        others = list(dict.fromkeys(repr(v) for v, y in zip(values, binary) if y is None))
        raise InputError(
            f"Data file {path}: labels must be binary (0/1, true/false) or K classes of one type "
            f"(ints, or strings), but column '{label_col}' (label_column) mixes types or holds missing "
            f"or fractional values: {len(others)} non-binary distinct value(s), e.g. {', '.join(others[:5])}."
        )
    distinct = sorted(set(keys))  # type: ignore[type-var]
    if isinstance(distinct[0], int) and distinct != list(range(distinct[0], distinct[0] + len(distinct))):
        missing = sorted(set(range(distinct[0], distinct[-1] + 1)) - set(distinct))  # type: ignore[arg-type]
        raise InputError(
            f"Data file {path}: labels must be binary (0/1, true/false) or K classes, but column '{label_col}' "
            f"(label_column) holds the integers {', '.join(map(str, distinct[:10]))}, which skip "
            f"{', '.join(map(str, missing[:5]))}{', ...' if len(missing) > 5 else ''}: integer classes must be "
            "consecutive (e.g. 0..K-1); a gap is a missing class or a typo."
        )
    if len(distinct) < 2:
        raise InputError(
            f"Data file {path}: column '{label_col}' (label_column) holds one value ({distinct[0]!r}); "
            "a classification task needs at least 2 distinct labels."
        )
    if distinct == list(range(len(distinct))):
        return keys, len(distinct)  # type: ignore[return-value]
    index = {v: i for i, v in enumerate(distinct)}
    return [index[k] for k in keys], len(distinct)  # type: ignore[index]


def check_columns(path: Path, names: list[str], mapping: dict[str, str]) -> None:
    """Every mapped column exists, or an error naming the file, the column, its recipe key and the file's columns."""
    for key, column in mapping.items():
        if column not in names:
            raise InputError(
                f"Data file {path} has no column '{column}' ({key} in the recipe's [data] table); "
                f"its columns are: {', '.join(map(str, names)) or '(none)'}."
            )


def load_classes(cfg: dict) -> tuple[list[Example], int]:
    """(text, label) for every row of the recipe's file, and the number of classes K."""
    path = Path(cfg["path"])
    rows, names = read_records(path)
    mapping = columns(cfg)
    check_columns(path, names, mapping)
    text_col, label_col = mapping["text_column"], mapping["label_column"]
    labels, n_classes = class_labels(path, label_col, [r.get(label_col) for r in rows])
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in rows]
    return list(zip(texts, labels)), n_classes


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
