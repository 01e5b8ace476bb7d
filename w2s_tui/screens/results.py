"""Results: the PGR table (accuracy or AUROC) and, per method, the weak×strong PGR heatmap grid,
with bootstrap chains as rows of steps. Numbers come from `w2s_core.analysis.pgr_table`, the same
function behind `w2s results`, so the two always agree."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from w2s_core import analysis
from w2s_core.store import queries as browse

from ..messages import ResultsLoaded
from ..widgets import PgrGrid, PgrTable
from ..workers import read_in_thread


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("m", "toggle_metric", "Acc/AUROC", id="results.metric"),
        Binding("right_square_bracket", "recipe(1)", "Next recipe", id="results.next_recipe"),
        Binding("left_square_bracket", "recipe(-1)", "Prev recipe", id="results.prev_recipe"),
        Binding("r", "refresh", "Refresh", id="results.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "acc"
        self.recipe_index = 0
        self.recipes: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="results-title")
        with VerticalScroll(id="results-body"):
            yield PgrTable(id="pgr")
            yield PgrGrid(id="grid")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Results"
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

    def load(self) -> None:
        index, metric, reading = self.recipe_index, self.metric, self.app.reading

        def read():
            with reading() as store:
                if store is None:
                    yield ResultsLoaded([], None, [], [], metric)
                    return
                recipes = browse.recipes_with_results(store)
                recipe = recipes[min(index, len(recipes) - 1)] if recipes else None
                rows = analysis.pgr_table(store, recipe["hash"], metric) if recipe else []
                chains = analysis.chain_steps(store, recipe["hash"], metric) if recipe else []
            yield ResultsLoaded(recipes, recipe, rows, chains, metric)

        read_in_thread(self.query_one(PgrTable), read, group="results", exclusive=True)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        """After the table showed the rows (the message bubbles up from it): the title and the grids."""
        self.recipes, recipe = message.recipes, message.recipe
        title = self.query_one("#results-title", Static)
        if recipe is None:
            title.update("No results yet: launch a recipe from the Recipes screen (1).")
        else:
            title.update(f"recipe [b]{recipe['name']}[/b] ({self.recipe_index + 1}/{len(self.recipes)}) · "
                         f"metric [b]{message.metric}[/b] · m: acc/auroc · [ ]: other recipes")
        self.query_one(PgrGrid).show(message.rows, message.chains, message.metric)
