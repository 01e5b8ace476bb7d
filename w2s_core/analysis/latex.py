"""The PGR table as LaTeX for a paper: `w2s results --latex` prints `latex_table(rows, summary)`.

A booktabs table (`\\usepackage{booktabs}`): per row the weak, w2s and ceiling figures, our PGR (the
mean of per-seed PGR) with its 95% interval, the paper's median and the seed count; below it, the
paper's per-method median (`pgr_summary`). The same rows as `w2s results`, so the numbers agree.
Names are escaped (`_ % & # $ { } ~ ^ \\ < >`), an undefined figure is `--`, and a recipe, task or
grid column appears only when the rows differ in it.
"""

from __future__ import annotations

import math

from w2s_core.analysis.plots_data import point_label
from w2s_core.analysis.table import method_label, strong_label

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",  # OT1 text fonts print < and > as other glyphs
    ">": r"\textgreater{}",
}
METRIC_HEAD = {"acc": "acc.", "auroc": "AUROC"}
MARKS = {"bootstrap": " (chain)", "prompt": " (prompt)"}


def escape(text: object) -> str:
    """Text as LaTeX typesets it literally."""
    return "".join(SPECIAL.get(c, c) for c in str(text))


def num(value: float | None, digits: int = 2) -> str:
    """A figure, `--` when undefined; a minus sign in math mode (a hyphen in text would be too short)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    return f"{value:.{digits}f}".replace("-", "$-$")


def ci(row: dict) -> str:
    return "--" if math.isnan(row["pgr_lo"]) else f"[{num(row['pgr_lo'])}, {num(row['pgr_hi'])}]"


def _tabular(spec: str, head: list[str], body: list[list[str]]) -> list[str]:
    line = lambda cells: " & ".join(cells) + r" \\"
    return [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        line(head),
        r"\midrule",
        *map(line, body),
        r"\bottomrule",
        r"\end{tabular}",
    ]


def _rows_tabular(rows: list[dict]) -> list[str]:
    metric = rows[0]["metric"]
    extra = [
        (key, head, fn)
        for key, head, fn in (
            ("recipe", "recipe", lambda r: r["recipe"]),
            ("task", "task", lambda r: r.get("task")),
            ("grid", "grid point", lambda r: point_label(r.get("grid") or {})),  # as the figures' titles
        )
        if len({str(fn(r)) for r in rows}) > 1
    ]
    m = METRIC_HEAD.get(metric, metric)
    head = [h for _, h, _ in extra] + [
        "weak",
        "strong",
        "method",
        f"weak {m}",
        f"w2s {m}",
        f"ceiling {m}",
        "PGR",
        r"95\% CI",
        "median",
        "seeds",
    ]
    body = [
        [escape(fn(r)) for _, _, fn in extra]
        + [escape(r["weak"]), escape(strong_label(r)), escape(method_label(r))]
        + [num(r[f"{role}_{metric}"], 3) for role in ("weak", "w2s", "ceiling")]
        + [num(r["pgr_mean"]), ci(r), num(r["pgr_median"]), str(len(r["seeds"]))]
        for r in rows
    ]
    return _tabular("l" * (len(extra) + 3) + "r" * 7, head, body)


def _summary_tabular(summary: list[dict]) -> list[str]:
    recipes = len({s["recipe"] for s in summary}) > 1
    head = (["recipe"] if recipes else []) + ["method", "median PGR", "valid runs", "pairs left out"]
    body = [
        ([escape(s["recipe"])] if recipes else [])
        + [
            escape(s["method"] + MARKS.get(s["kind"], "")),
            num(s["pgr_median"]),
            str(s["n_valid"]),
            f"{s['pairs_excluded']} of {s['pairs']}",
        ]
        for s in summary
    ]
    return _tabular("l" * (1 + recipes) + "rrr", head, body)


def latex_table(rows: list[dict], summary: list[dict] | None = None) -> str:
    """A booktabs `table` of the PGR rows (and, given `summary`, the per-method medians below them)."""
    if not rows:
        return "% w2s results --latex: no finished transfer results yet\n"
    recipes = ", ".join(dict.fromkeys(escape(r["recipe"]) for r in rows))
    caption = (
        rf"Weak-to-strong results of {recipes}. PGR: the mean of per-seed PGR with its 95\% Student-$t$ "
        r"interval over seeds; median: the paper's estimator (the median of each run's PGR against "
        r"seed-averaged weak and ceiling models)."
    )
    lines = [
        r"% w2s results --latex: needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        *_rows_tabular(rows),
    ]
    if summary:
        lines += [r"\par\medskip", *_summary_tabular(summary)]
    return "\n".join([*lines, r"\end{table}"]) + "\n"
