"""Results: the PGR table (accuracy or AUROC) and, per method, the weak×strong PGR heatmap grid,
with bootstrap chains as rows of steps. Numbers come from `w2s_core.analysis.pgr_table`, the same
function behind `w2s results`, so the two always agree."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from w2s_core import analysis

from w2s_core.store import queries as browse
from w2s_core.errors import W2SError

from . import fmt

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


def _ordered(values) -> list[str]:
    return list(dict.fromkeys(values))


def pgr_grids(rows: list[dict]) -> list[Table]:
    """One weak (rows) × strong (columns) heatmap of PGR per transfer method."""
    transfers = [r for r in rows if r["kind"] == "transfer"]
    grids = []
    for method in _ordered(r["method"] for r in transfers):
        cells = {(r["weak"], r["strong"]): r for r in transfers if r["method"] == method}
        weak = _ordered(w for w, _ in cells)
        strong = _ordered(s for _, s in cells)
        grid = Table(title=f"PGR grid · {method}", title_justify="left", show_lines=True, padding=(0, 1))
        grid.add_column("weak \\ strong", style="bold")
        for s in strong:
            grid.add_column(s, justify="center")
        for w in weak:
            line = []
            for s in strong:
                r = cells.get((w, s))
                line.append(Text("·", style="dim") if r is None else
                            Text(f"{r['pgr']:.2f}", style=f"bold white on {heat(r['pgr'])}"))
            grid.add_row(w, *line)
        grids.append(grid)
    return grids


def chain_table(rows: list[dict], chains: list[dict], metric: str) -> Table | None:
    """Each bootstrap chain as a row of steps (model and its mean metric), then its PGR."""
    if not chains:
        return None
    pgr = {(tuple(r["chain"]), r["method"]): r for r in rows if r["kind"] == "bootstrap"}
    table = Table(title=f"Bootstrap chains · {metric}", title_justify="left", show_header=False)
    for chain in chains:
        steps = Text()
        for i, (model, value) in enumerate(zip(chain["chain"], chain["steps"])):
            if i:
                steps.append(" → ", style="dim")
            steps.append(model, style="bold")
            steps.append(f" {fmt.num(value)}" + (" (GT)" if i == 0 else ""))
        r = pgr.get((tuple(chain["chain"]), chain["method"]))
        end = Text("PGR ") + (Text(f"{r['pgr']:.2f}", style=f"bold white on {heat(r['pgr'])}") if r else Text("-"))
        table.add_row(steps, Text(chain["method"]), end)
    return table


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("m", "toggle_metric", "Acc/AUROC", id="results.metric"),
        Binding("right_square_bracket", "recipe(1)", "Next recipe", id="results.next_recipe"),
        Binding("left_square_bracket", "recipe(-1)", "Prev recipe", id="results.prev_recipe"),
        Binding("r", "refresh", "Refresh", id="results.refresh"),
    ]
    COLUMNS = ("weak", "strong", "method", "weak", "w2s", "ceiling", "PGR", "95% CI", "seeds")

    def __init__(self) -> None:
        super().__init__()
        self.metric = "acc"
        self.recipe_index = 0
        self.recipes: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="results-title")
        with VerticalScroll(id="results-body"):
            yield DataTable(id="pgr", cursor_type="row", zebra_stripes=True)
            yield Static(id="grid")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Results"
        self.query_one("#pgr", DataTable).add_columns(*self.COLUMNS)
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def action_toggle_metric(self) -> None:
        self.metric = "auroc" if self.metric == "acc" else "acc"
        self.load()

    def action_recipe(self, step: int) -> None:
        if self.recipes:
            self.recipe_index = (self.recipe_index + step) % len(self.recipes)
            self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="results")
    def load(self) -> None:
        try:
            store = self.app.open_store()
            if store is None:
                self.app.call_from_thread(self.show, [], None, [], [])
                return
            with store:
                recipes = browse.recipes_with_results(store)
                recipe = recipes[min(self.recipe_index, len(recipes) - 1)] if recipes else None
                rows = analysis.pgr_table(store, recipe["hash"], self.metric) if recipe else []
                chains = analysis.chain_steps(store, recipe["hash"], self.metric) if recipe else []
        except W2SError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.show, recipes, recipe, rows, chains)

    def show(self, recipes: list[dict], recipe: dict | None, rows: list[dict], chains: list[dict]) -> None:
        self.recipes = recipes
        m = self.metric
        title = self.query_one("#results-title", Static)
        if recipe is None:
            title.update("No results yet: launch a recipe from the Recipes screen (1).")
        else:
            title.update(f"recipe [b]{recipe['name']}[/b] ({self.recipe_index + 1}/{len(recipes)}) · "
                         f"metric [b]{m}[/b] · m: acc/auroc · [ ]: other recipes")
        table = self.query_one("#pgr", DataTable)
        table.clear()
        for r in rows:
            warn = Text(" !", style="bold red") if r["warnings"] else ""
            table.add_row(r["weak"], analysis.strong_label(r), r["method"], fmt.num(r[f"weak_{m}"]), fmt.num(r[f"w2s_{m}"]),
                          fmt.num(r[f"ceiling_{m}"]), Text(f"{r['pgr']:.2f}") + warn, analysis.ci_text(r), str(len(r["seeds"])))
        parts = pgr_grids(rows)
        chain = chain_table(rows, chains, m)
        if chain is not None:
            parts.append(chain)
        warnings = [f"{r['weak']}→{r['strong']} {r['method']}: {w}" for r in rows for w in r["warnings"]]
        if warnings:
            parts.append(Text("\n".join(f"! {w}" for w in warnings), style="red"))
        self.query_one("#grid", Static).update(Group(*parts) if parts else "")
