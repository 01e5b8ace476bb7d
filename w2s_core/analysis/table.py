"""The PGR table as text: the CLI's table, and the labels the CLI and the TUI's grid share.

A suite's table (rows of more than one task) gains a first `task` column; a prompting baseline's
method reads "<k>-shot prompt", and a strong model started from a generative stage is marked "+gen".
A grid's table gains a column per swept key after the method (a row that does not depend on a key,
such as an xent transfer under an alpha sweep, shows "*" there); pivoted by a key (`--by`), that key's
column and "best of", the other keys' values that gave the row's PGR.
"""

from __future__ import annotations

import math

from w2s_core.analysis.pivot import swept
from w2s_core.spec.grid import point_label, value_text


def ci_text(row: dict) -> str:
    """A row's 95% interval of PGR, or n/a with one seed."""
    return "n/a" if math.isnan(row["pgr_lo"]) else f"[{row['pgr_lo']:.2f}, {row['pgr_hi']:.2f}]"


def pgr_text(row: dict) -> str:
    """A row's mean PGR, or n/a where no seed has one (a self-pair m->m: its ceiling is its weak model)."""
    return "n/a" if math.isnan(row["pgr_mean"]) else f"{row['pgr_mean']:.2f}"


def strong_label(row: dict) -> str:
    """The strong side of a row: the model, or a chain's steps after the weak model (+gen: its jobs
    started from a generative finetuning stage)."""
    label = " > ".join(row["chain"][1:]) if row["chain"] else row["strong"]
    return label + (" +gen" if row.get("generative") else "")


def method_label(row: dict) -> str:
    """A row's method; a prompting baseline's says so ("5-shot prompt")."""
    return f"{row['method']} prompt" if row["kind"] == "prompt" else row["method"]


HEAD = ["weak", "strong", "method", "weak", "w2s", "ceiling", "PGR", "95% CI", "seeds", "median", "valid"]
FIGURE_HEAD = ["PGR final", "PGR oracle"]  # shown once any row has a figure the selected one does not say
LEFT_ALIGNED = 3  # the name columns; numbers are right-aligned


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def has_other_figures(rows: list[dict]) -> bool:
    """Whether any row's final or oracle PGR says something the selected PGR does not (jobs recorded
    before early stopping existed have neither, and the table keeps its old columns for them)."""
    return any(not math.isnan(r["pgr_oracle"]) or _num(r["pgr_final"]) != _num(r["pgr_selected"]) for r in rows)


def grid_columns(rows: list[dict]) -> list[str]:
    """The swept keys shown as columns: the pivot's key alone (`--by`), else every key the rows sweep."""
    if rows and "by" in rows[0]:
        return [rows[0]["by"]]
    return swept(rows)


def grid_cells(row: dict, keys: list[str]) -> list[str]:
    """A row's swept values ("*": it does not depend on that key), then "best of" when pivoted."""
    grid = row.get("grid", {})
    cells = [value_text(grid[k]) if k in grid else "*" for k in keys]
    return cells + ([point_label(row["best_of"]) or "-"] if "best_of" in row else [])


def _cells(row: dict, metric: str, figures: bool, tasks: bool, keys: list[str]) -> list[str]:
    cells = [
        *([str(row.get("task"))] if tasks else []),
        row["weak"],
        strong_label(row),
        method_label(row),
        *grid_cells(row, keys),
        f"{row[f'weak_{metric}']:.3f}",
        f"{row[f'w2s_{metric}']:.3f}",
        f"{row[f'ceiling_{metric}']:.3f}",
        pgr_text(row),
        ci_text(row),
        str(len(row["seeds"])),
        _num(row["pgr_median"]),
        str(row["n_valid"]),
    ]
    return cells + ([_num(row["pgr_final"]), _num(row["pgr_oracle"])] if figures else [])


def _summary_lines(summary: list[dict]) -> list[str]:
    """The paper's per-method figure, one line a method (chains apart)."""
    if not summary:
        return []
    marks = {"bootstrap": " (chain)", "prompt": " (prompt)"}
    names = [f"{s['method']}{marks.get(s['kind'], '')}" + (f" ({point_label(s['grid'])})" if s.get("grid") else "")
             for s in summary]  # fmt: skip
    width = max(len(n) for n in names)
    lines = [
        "",
        "median PGR per method over every valid run of every pair (the paper's estimator; a pair is "
        "left out when its ceiling mean is not above its weak mean):",
    ]
    for name, s in zip(names, summary):
        lines.append(
            f"  {name:<{width}}  {_num(s['pgr_median']):>5}  {s['n_valid']} runs, "
            f"{s['pairs_excluded']} of {s['pairs']} pairs left out"
        )
    return lines


def format_table(rows: list[dict], summary: list[dict] | None = None) -> str:
    """A text table for the terminal, columns as wide as their widest entry; `summary` (from
    `pgr_summary`) adds the paper's per-method median below it."""
    if not rows:
        return "no finished transfer results yet"
    metric = rows[0]["metric"]
    figures = has_other_figures(rows)
    tasks = len({r.get("task") for r in rows}) > 1  # a suite: which task each row is
    keys = grid_columns(rows)
    swept = keys + (["best of"] if "best_of" in rows[0] else [])
    head = (["task"] if tasks else []) + HEAD[:LEFT_ALIGNED] + swept + HEAD[LEFT_ALIGNED:]
    head += FIGURE_HEAD if figures else []
    cells = [_cells(r, metric, figures, tasks, keys) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *cells)]
    left = LEFT_ALIGNED + tasks

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    lines = [
        f"metric: {metric}  (PGR: mean of per-seed PGR; median: the paper's estimator over valid runs)",
        line(head),
        "-" * len(line(head)),
    ]
    for r, row in zip(rows, cells):
        lines.append(line(row))
        lines += [f"    warning: {w}" for w in r["warnings"]]
    return "\n".join(lines + _summary_lines(summary or []))
