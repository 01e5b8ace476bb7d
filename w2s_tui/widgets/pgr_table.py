"""The PGR table of one recipe: weak, strong, method, the three accuracies (or AUROCs), PGR with its
95% CI and seed count, one row per `w2s_core.analysis.pgr_table` row, as `w2s results` prints it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from w2s_core import analysis

from .. import fmt
from ..messages import ResultsLoaded

COLUMNS = ("weak", "strong", "method", "weak", "w2s", "ceiling", "PGR", "95% CI", "seeds")


class PgrTable(DataTable):
    """Workers post ResultsLoaded here (it then bubbles to the screen), so the rows and column widths
    are settled in the table's own task before the next paint (see JobTable)."""

    DEFAULT_CSS = "PgrTable { height: auto; max-height: 60%; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        self.show(message.rows, message.metric)

    def show(self, rows: list[dict], m: str) -> None:
        self.clear()
        for r in rows:
            warn = Text(" !", style="bold red") if r["warnings"] else ""
            self.add_row(r["weak"], analysis.strong_label(r), r["method"], fmt.num(r[f"weak_{m}"]),
                         fmt.num(r[f"w2s_{m}"]), fmt.num(r[f"ceiling_{m}"]), Text(f"{r['pgr']:.2f}") + warn,
                         analysis.ci_text(r), str(len(r["seeds"])))
