"""The PGR heatmaps: per transfer method a weak (rows) × strong (columns) grid coloured by PGR, then
the bootstrap chains as rows of steps, then the warnings of the table and the notes on what it leaves
out. Rows come from `w2s_core.analysis.pgr_table` and `chain_steps`, the numbers behind `w2s results`.
Model and method names are Text, never markup. A grid recipe has a heatmap per method and grid point
(titled with its values), or pivoted by a swept key, per method and value of that key (each cell the
best over the other keys)."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from w2s_core.spec.grid import point_label

from .. import fmt

# PGR 0 (no gap recovered) is red, 0.5 amber, 1 (the ceiling reached) green; above 1 blue, NaN grey.
STOPS = ((0.0, (178, 34, 34)), (0.5, (212, 160, 23)), (1.0, (46, 139, 87)))


def heat(value: float) -> str:
    if value is None or math.isnan(value):
        return "grey30"
    if value > 1.05:
        return "rgb(30,110,200)"
    v = min(max(value, 0.0), 1.0)
    (a, ca), (b, cb) = (STOPS[0], STOPS[1]) if v <= 0.5 else (STOPS[1], STOPS[2])
    t = (v - a) / (b - a)
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(ca, cb))
    return f"rgb({r},{g},{bl})"


def pgr_cell(value: float) -> Text:
    return Text(f"{value:.2f}", style=f"bold white on {heat(value)}")


def _ordered(values) -> list[str]:
    return list(dict.fromkeys(values))


def point_of(row: dict) -> str:
    """Which grid point (or, pivoted, which value of the pivot's key) a row is: "lr=0.01 alpha=0.5"; ""
    for a recipe without lists."""
    grid = row.get("grid", {})
    if "by" in row:
        return point_label({row["by"]: grid[row["by"]]} if row["by"] in grid else {}) + " (best)"
    return point_label(grid)


def pgr_grids(rows: list[dict]) -> list[Table]:
    """One weak (rows) × strong (columns) heatmap of PGR per task, transfer method and grid point, then one
    per task for its prompting rows (the prompted model as "strong", its shots as the method). A suite's
    tasks get their own grids: two tasks may pair models of the same names."""
    tasks = _ordered(r.get("task") for r in rows)
    grids = []
    for kind, label in (("transfer", ""), ("prompt", "prompting ")):
        picked = [r for r in rows if r["kind"] == kind]
        for task in tasks:
            where = f"{task} · " if len(tasks) > 1 and task else ""
            for method in _ordered(r["method"] for r in picked if r.get("task") == task):
                points: dict[str, dict[tuple[str, str], dict]] = {}  # grid point -> its cells, in row order
                for r in picked:
                    if r["method"] == method and r.get("task") == task:
                        points.setdefault(point_of(r), {})[(r["weak"], r["strong"])] = r
                for point, cells in points.items():
                    grids.append(_grid(f"PGR grid · {where}{label}{method}" + (f" · {point}" if point else ""), cells))
    return grids


def _grid(title: str, cells: dict[tuple[str, str], dict]) -> Table:
    weak = _ordered(w for w, _ in cells)
    strong = _ordered(s for _, s in cells)
    grid = Table(title=Text(title), title_justify="left", show_lines=True, padding=(0, 1))
    grid.add_column("weak \\ strong", style="bold")
    for s in strong:
        grid.add_column(Text(s), justify="center")
    for w in weak:
        line = [Text("·", style="dim") if (w, s) not in cells else pgr_cell(cells[w, s]["pgr"]) for s in strong]
        grid.add_row(Text(w), *line)
    return grid


def chain_table(rows: list[dict], chains: list[dict], metric: str) -> Table | None:
    """Each bootstrap chain as a row of steps (model and its mean metric), then its PGR."""
    if not chains:
        return None
    pgr = {
        (tuple(r["chain"]), r["method"], point_label(r.get("grid", {}))): r for r in rows if r["kind"] == "bootstrap"
    }
    if rows and "by" in rows[0]:  # pivoted: the chains of the points the rows chose
        chains = [c for c in chains if (tuple(c["chain"]), c["method"], point_label(c.get("grid", {}))) in pgr]
    table = Table(title=f"Bootstrap chains · {metric}", title_justify="left", show_header=False)
    for chain in chains:
        point = point_label(chain.get("grid", {}))
        steps = Text()
        for i, (model, value) in enumerate(zip(chain["chain"], chain["steps"])):
            if i:
                steps.append(" → ", style="dim")
            steps.append(model, style="bold")
            steps.append(f" {fmt.num(value)}" + (" (GT)" if i == 0 else ""))
        r = pgr.get((tuple(chain["chain"]), chain["method"], point))
        method = Text(chain["method"] + (f" · {point}" if point else ""))
        table.add_row(steps, method, Text("PGR ") + (pgr_cell(r["pgr"]) if r else Text("-")))
    return table


class PgrGrid(Static):
    """The grids, the chains and the warnings of one recipe's PGR table, stacked."""

    DEFAULT_CSS = "PgrGrid { height: auto; padding: 1 1 0 1; }"

    def show(self, rows: list[dict], chains: list[dict], metric: str, notes: list[str] = ()) -> None:
        parts: list = pgr_grids(rows)
        chain = chain_table(rows, chains, metric)
        if chain is not None:
            parts.append(chain)
        warnings = [
            f"{r['weak']}→{r['strong']} {r['method']}"
            + (f" [{point_label(r['grid'])}]" if r.get("grid") else "")
            + f": {w}"
            for r in rows
            for w in r["warnings"]
        ]
        if warnings:
            parts.append(Text("\n".join(f"! {w}" for w in warnings), style="red"))
        if notes:
            parts.append(Text("\n".join(f"· {n}" for n in notes), style="yellow"))
        self.update(Group(*parts) if parts else "")
