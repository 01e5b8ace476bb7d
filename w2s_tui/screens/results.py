"""Results: the PGR table (accuracy or AUROC; our mean PGR with its interval beside the paper's median,
or the final, selected and oracle figures side by side) and, per method, the weak×strong PGR heatmap
grid, with bootstrap chains as rows of steps. Numbers come from `w2s_core.analysis.pgr_table`, the
same function behind `w2s results`, so the two always agree.

What the table cannot show is said below it: planned pairs missing because a job they need failed,
was cancelled or has not finished, and (in AUROC mode) the accuracy noise-floor warnings, which
concern the gap the PGR divides by whatever the metric.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from w2s_core.status import JobStatus
from w2s_core.store import queries as browse

from ..messages import ResultsLoaded
from ..widgets import AppFooter, PgrGrid, PgrTable
from ..workers import read_in_thread

VIEWS = ("estimators", "figures")


def _key(kind: str, weak: str, strong: str, method: str) -> tuple:
    return kind, weak, strong, method


def _seeds(jobs: list[dict]) -> str:
    return ", ".join(f"s{j['role']['seed']}" for j in jobs)


def missing_notes(planned: list[dict], rows: list[dict]) -> list[str]:
    """What the table leaves out: how many planned jobs are not done (by status), then each planned
    pair with fewer seeds in the table than planned, and which of the jobs it needs are not done."""
    if not planned:
        return []
    not_done = Counter(j["status"] for j in planned if j["status"] != JobStatus.DONE)
    notes = (
        [
            f"{sum(not_done.values())} of {len(planned)} jobs not done: "
            + ", ".join(f"{n} {status}" for status, n in not_done.items())
        ]
        if not_done
        else []
    )
    gt: dict[str, list[dict]] = defaultdict(list)
    pairs: dict[tuple, list[dict]] = defaultdict(list)
    for job in planned:
        role = job["role"]
        if role["role"] == "gt":
            gt[role["model"]].append(job)
        elif role["role"] == "transfer":
            pairs[_key("transfer", role["weak"], role["strong"], role["method"])].append(job)
        elif role["role"] == "bootstrap":  # prompt and generative jobs have rows (or none) of their own
            pairs[_key("bootstrap", role["chain"][0], role["chain"][-1], role["method"])].append(job)
    shown = {_key(r["kind"], r["weak"], r["strong"], r["method"]): len(r["seeds"]) for r in rows}
    for key, jobs in pairs.items():
        kind, weak, strong, method = key
        planned_seeds = len({j["role"]["seed"] for j in jobs})
        if shown.get(key, 0) >= planned_seeds:
            continue
        needs = (("weak", weak, gt[weak]), ("ceiling", strong, gt[strong]), (kind, method, jobs))
        why = [
            f"{label} {name} {status} ({_seeds([j for j in group if j['status'] == status])})"
            for label, name, group in needs
            for status in dict.fromkeys(j["status"] for j in group if j["status"] != JobStatus.DONE)
        ]
        have = f"{shown[key]} of {planned_seeds} seeds in the table" if key in shown else "not in the table"
        notes.append(f"{weak}→{strong} {method}: {have}" + (f": {'; '.join(why)}" if why else ""))
    return notes


def with_accuracy_warnings(rows: list[dict], acc_rows: list[dict]) -> list[dict]:
    """AUROC rows with the noise-floor warnings of the same pairs' accuracies (the analysis warns
    about accuracy gaps only, and a tiny gap makes any PGR noise)."""
    warned = {_key(r["kind"], r["weak"], r["strong"], r["method"]): r["warnings"] for r in acc_rows}
    return [
        {
            **r,
            "warnings": [
                *r["warnings"],
                *(f"(accuracy) {w}" for w in warned.get(_key(r["kind"], r["weak"], r["strong"], r["method"]), [])),
            ],
        }
        for r in rows
    ]


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("m", "toggle_metric", "Acc/AUROC", id="results.metric"),
        Binding("v", "toggle_view", "Final/selected/oracle", id="results.figures"),
        Binding("right_square_bracket", "recipe(1)", "Next recipe", id="results.next_recipe"),
        Binding("left_square_bracket", "recipe(-1)", "Prev recipe", id="results.prev_recipe"),
        Binding("r", "refresh", "Refresh", id="results.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "acc"
        self.view = VIEWS[0]
        self.recipe_hash: str | None = None  # the recipe shown: kept when newer recipes arrive
        self.recipes: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="results-title")
        with VerticalScroll(id="results-body"):
            yield PgrTable(id="pgr")
            yield PgrGrid(id="grid")
        yield AppFooter()

    def on_mount(self) -> None:
        self.sub_title = self.app.where("Results")

    def on_screen_resume(self) -> None:  # also the first time the screen shows (after on_mount)
        self.load()

    def action_toggle_metric(self) -> None:
        self.metric = "auroc" if self.metric == "acc" else "acc"
        self.load()

    def action_toggle_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.query_one(PgrTable).view = self.view
        self.load()

    def action_recipe(self, step: int) -> None:
        hashes = [r["hash"] for r in self.recipes]
        if hashes:
            here = hashes.index(self.recipe_hash) if self.recipe_hash in hashes else 0
            self.recipe_hash = hashes[(here + step) % len(hashes)]
            self.load()

    def action_refresh(self) -> None:
        self.load()

    def load(self) -> None:
        wanted, metric, reading = self.recipe_hash, self.metric, self.app.reading

        def read():
            from w2s_core.analysis.pgr import chain_steps, pgr_table  # numpy: off the UI thread

            with reading() as store:
                if store is None:
                    yield ResultsLoaded([], None, [], [], metric)
                    return
                recipes = browse.recipes_with_results(store)
                recipe = next((r for r in recipes if r["hash"] == wanted), recipes[0] if recipes else None)
                rows, chains, notes = [], [], []
                if recipe:
                    rows = pgr_table(store, recipe["hash"], metric)
                    if metric != "acc":
                        rows = with_accuracy_warnings(rows, pgr_table(store, recipe["hash"], "acc"))
                    chains = chain_steps(store, recipe["hash"], metric)
                    notes = missing_notes(browse.recipe_rows(store, recipe["hash"]), rows)
            yield ResultsLoaded(recipes, recipe, rows, chains, metric, notes)

        read_in_thread(self.query_one(PgrTable), read, group="results", exclusive=True)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        """After the table showed the rows (the message bubbles up from it): the title and the grids."""
        self.recipes, recipe = message.recipes, message.recipe
        self.recipe_hash = recipe["hash"] if recipe else None
        title = self.query_one("#results-title", Static)
        if recipe is None:
            title.update("No results yet: launch a recipe from the Recipes screen (1).")
        else:
            index = [r["hash"] for r in self.recipes].index(recipe["hash"]) + 1
            title.update(
                Text.assemble(
                    "recipe ",
                    (recipe["name"], "bold"),
                    f" ({index}/{len(self.recipes)}) · ",
                    (message.metric, "bold"),
                    " (m) · ",
                    (self.view, "bold"),
                    " (v) · [ ] recipes",
                )
            )
        self.query_one(PgrGrid).show(message.rows, message.chains, message.metric, message.notes)
