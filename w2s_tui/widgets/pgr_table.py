"""The PGR table of one recipe, one row per `w2s_core.analysis.pgr_table` row, as `w2s results` prints it.

Two views (the Results screen's `v`):
    estimators  weak, strong, method, the three accuracies (or AUROCs), our PGR (the mean of per-seed
                PGR) with its 95% interval and seed count, and the paper's median PGR over its valid runs
    figures     PGR and the w2s figure of the final step, the selected checkpoint and the oracle
                (the best test accuracy over training: optimistic, never used to select) side by side
Columns the terminal has no room for are dropped, the least needed first: PGR, its interval and the
median always stay. A grid recipe's rows gain a column per swept key after the method ("*": the row
does not depend on it); pivoted by one (the Results screen's pivot key), that key and "best of".
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.widgets import DataTable

from w2s_core.analysis.table import ci_text, grid_cells, grid_columns, method_label, strong_label

from .. import fmt
from ..messages import ResultsLoaded
from .job_table import Column, cell_width, fit

# names, PGR, its interval and the median stay on any terminal; the rest go by `drop` (higher first)
ESTIMATORS = (
    Column("weak"),
    Column("strong"),
    Column("method"),
    Column("weak", 7, right=True),
    Column("w2s", 5, right=True),
    Column("ceiling", 6, right=True),
    Column("PGR", right=True),
    Column("95% CI", right=True),
    Column("seeds", 9, right=True),
    Column("median", right=True),
    Column("valid", 8, right=True),
)
FIGURES = (
    Column("weak"),
    Column("strong"),
    Column("method"),
    Column("PGR final", right=True),
    Column("PGR selected", right=True),
    Column("PGR oracle", right=True),
    Column("w2s final", 3, right=True),
    Column("w2s selected", 2, right=True),
    Column("w2s oracle", 4, right=True),
)
VIEWS = {"estimators": ESTIMATORS, "figures": FIGURES}
NAMES = 3  # the name columns every view starts with; a grid's columns follow them
SCROLLBAR = 2  # cells the surrounding scroll area may take


def pgr_text(value: float, warnings: list[str] | None = None) -> Text:
    text = Text("-" if value is None or math.isnan(value) else f"{value:.2f}")
    return text + Text(" !", style="bold red") if warnings else text


def columns_for(rows: list[dict], view: str, keys: list[str]) -> tuple[Column, ...]:
    """The view's columns, with the grid's (`keys`, `grid_columns`) after the method (none for a recipe
    without lists)."""
    columns = VIEWS[view]
    swept = tuple(Column(k, right=True) for k in keys) + ((Column("best of"),) if rows and "best_of" in rows[0] else ())
    return columns[:NAMES] + swept + columns[NAMES:]


def row_cells(r: dict, m: str, view: str, keys: list[str] = ()) -> tuple:
    names = (Text(r["weak"]), Text(strong_label(r)), Text(method_label(r)), *grid_cells(r, list(keys)))
    if view == "figures":
        return (
            *names,
            pgr_text(r["pgr_final"]),
            pgr_text(r["pgr_selected"], r["warnings"]),
            pgr_text(r["pgr_oracle"]),
            *(fmt.num(r[f"w2s_{m}_{which}"]) for which in ("final", "selected", "oracle")),
        )
    return (
        *names,
        fmt.num(r[f"weak_{m}"]),
        fmt.num(r[f"w2s_{m}"]),
        fmt.num(r[f"ceiling_{m}"]),
        pgr_text(r["pgr_mean"], r["warnings"]),
        ci_text(r),
        str(len(r["seeds"])),
        pgr_text(r["pgr_median"]),
        str(r["n_valid"]),
    )


def _justified(cell: str | Text, right: bool) -> Text:
    text = Text(cell) if isinstance(cell, str) else cell.copy()
    text.justify = "right" if right else "left"
    return text


class PgrTable(DataTable):
    """Workers post ResultsLoaded here (it then bubbles to the screen), so the rows and column widths
    are settled in the table's own task before the next paint (see JobTable)."""

    DEFAULT_CSS = "PgrTable { height: auto; max-height: 60%; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.view = "estimators"
        self._rows: list[dict] = []
        self._metric = "acc"
        self._shown: list[str] = []  # the headers shown: a change of view, grid or pivot rebuilds the columns

    def on_mount(self) -> None:
        self.show([], self._metric)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        self.show(message.rows, message.metric)

    def on_resize(self) -> None:
        self.show(self._rows, self._metric)

    def show(self, rows: list[dict], m: str, view: str | None = None) -> None:
        """Fill the table with the columns of `view` that fit its width (all of them before layout)."""
        self._rows, self._metric, self.view = rows, m, view or self.view
        keys = grid_columns(rows)
        columns = columns_for(rows, self.view, keys)
        cells = [row_cells(r, m, self.view, keys) for r in rows]
        natural = [max([len(c.name)] + [cell_width(row[i]) for row in cells]) for i, c in enumerate(columns)]
        width = self.app.size.width - SCROLLBAR if self.is_mounted else 10_000
        shown = [i for i, _ in fit(columns, natural, max(width, 20))]
        headers = [f"{i}:{columns[i].name}" for i in shown]
        self.clear(columns=headers != self._shown or not self.columns)
        if not self.columns:
            for i in shown:
                self.add_column(columns[i].name, key=str(i))
        self._shown = headers
        self.add_rows([[_justified(row[i], columns[i].right) for i in shown] for row in cells])
