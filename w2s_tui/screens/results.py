"""Results: the PGR table (accuracy or AUROC; our mean PGR with its interval beside the paper's median,
or the final, selected and oracle figures side by side) and, per method, the weak×strong PGR heatmap
grid, with bootstrap chains as rows of steps. Numbers come from `w2s_core.analysis.pgr_table`, the
same function behind `w2s results`, so the two always agree.

What the table cannot show is said below it: planned pairs missing because a job they need failed,
was cancelled or has not finished, and (in AUROC mode) the accuracy noise-floor warnings, which
concern the gap the PGR divides by whatever the metric.

A grid recipe (list values) shows a row per grid point with a column per swept key; `b` cycles the
pivot (none, then each swept key): one row per setup and value of that key, the best over the other
keys' values (`w2s results --by KEY`). For a recipe without a grid the key is hidden and does nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from w2s_core.spec.grid import point_label
from w2s_core.status import JobStatus
from w2s_core.store import queries as browse

from ..figures import figures_reader
from ..messages import ResultsLoaded
from ..widgets import AppFooter, PgrGrid, PgrTable
from ..workers import read_in_thread

VIEWS = ("estimators", "figures")


def _key(kind: str, weak: str, strong: str, method: str) -> tuple:
    return kind, weak, strong, method


def _point(role_or_row: dict) -> tuple:
    """A role's grid point, or the values a row's points share, as sorted (key, value) pairs; ()
    without a grid."""
    return tuple(sorted(role_or_row.get("grid", {}).items()))


def _shown_by_pair(rows: list[dict]) -> dict[tuple, list[tuple[set, int]]]:
    """The table's rows by pair (kind, weak, strong, method): each row's grid values and its seeds, read
    once (a pair is looked up per planned grid point)."""
    shown: dict[tuple, list[tuple[set, int]]] = defaultdict(list)
    for r in rows:
        shown[_key(r["kind"], r["weak"], r["strong"], r["method"])].append((set(_point(r)), len(r["seeds"])))
    return shown


def _shown_seeds(shown: dict[tuple, list[tuple[set, int]]], key: tuple, point: tuple) -> int | None:
    """The seeds in the table of the planned pair `key` at grid `point` (a row may stand for several
    points: those whose jobs are the same), None when no row shows it."""
    found = [seeds for values, seeds in shown.get(key, []) if values <= set(point)]
    return max(found) if found else None


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
    gt: dict[tuple, list[dict]] = defaultdict(list)  # by (model, grid point)
    pairs: dict[tuple, list[dict]] = defaultdict(list)  # by (kind, weak, strong, method, grid point)
    for job in planned:
        role = job["role"]
        if role["role"] == "gt":
            gt[(role["model"], _point(role))].append(job)
        elif role["role"] == "transfer":
            pairs[(*_key("transfer", role["weak"], role["strong"], role["method"]), _point(role))].append(job)
        elif role["role"] == "bootstrap":  # prompt and generative jobs have rows (or none) of their own
            pairs[(*_key("bootstrap", role["chain"][0], role["chain"][-1], role["method"]), _point(role))].append(job)
    by_pair = _shown_by_pair(rows)
    for (kind, weak, strong, method, point), jobs in pairs.items():
        planned_seeds = len({j["role"]["seed"] for j in jobs})
        shown = _shown_seeds(by_pair, _key(kind, weak, strong, method), point)
        if (shown or 0) >= planned_seeds:
            continue
        needs = (("weak", weak, gt[(weak, point)]), ("ceiling", strong, gt[(strong, point)]), (kind, method, jobs))
        why = [
            f"{label} {name} {status} ({_seeds([j for j in group if j['status'] == status])})"
            for label, name, group in needs
            for status in dict.fromkeys(j["status"] for j in group if j["status"] != JobStatus.DONE)
        ]
        have = f"{shown} of {planned_seeds} seeds in the table" if shown is not None else "not in the table"
        where = f" [{point_label(dict(point))}]" if point else ""
        notes.append(f"{weak}→{strong} {method}{where}: {have}" + (f": {'; '.join(why)}" if why else ""))
    return notes


def with_accuracy_warnings(rows: list[dict], acc_rows: list[dict]) -> list[dict]:
    """AUROC rows with the noise-floor warnings of the same pairs' accuracies (the analysis warns
    about accuracy gaps only, and a tiny gap makes any PGR noise)."""

    def key(r: dict) -> tuple:
        return (*_key(r["kind"], r["weak"], r["strong"], r["method"]), _point(r))

    warned = {key(r): r["warnings"] for r in acc_rows}
    return [{**r, "warnings": [*r["warnings"], *(f"(accuracy) {w}" for w in warned.get(key(r), []))]} for r in rows]


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("m", "toggle_metric", "Acc/AUROC", id="results.metric"),
        Binding("v", "toggle_view", "Final/selected/oracle", id="results.figures"),
        Binding("right_square_bracket", "recipe(1)", "Next recipe", id="results.next_recipe"),
        Binding("left_square_bracket", "recipe(-1)", "Prev recipe", id="results.prev_recipe"),
        Binding("r", "refresh", "Refresh", id="results.refresh"),
        Binding("b", "pivot", "Pivot by", id="results.pivot"),  # shown only for a grid recipe (check_action)
        Binding("p", "write_figures", "Write figures", id="results.plot"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "acc"
        self.view = VIEWS[0]
        self.recipe_hash: str | None = None  # the recipe shown: kept when newer recipes arrive
        self.recipes: list[dict] = []
        self.swept: list[str] = []  # the keys the shown recipe's grid sweeps ([] without a grid)
        self.pivot_by: str | None = None  # the swept key the table is pivoted by, if any

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

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The pivot key only where there is a grid, so a recipe without one shows the footer it always had."""
        return bool(self.swept) if action == "pivot" else True

    def action_pivot(self) -> None:
        """Cycle the pivot: none, then each swept key in turn."""
        order = [None, *self.swept]
        here = order.index(self.pivot_by) if self.pivot_by in order else 0
        self.pivot_by = order[(here + 1) % len(order)]
        self.load()

    def action_write_figures(self) -> None:
        """The shown recipe's figures as PNG and SVG files, in a worker; a toast names the folder."""
        recipe = next((r for r in self.recipes if r["hash"] == self.recipe_hash), None)
        if recipe is None:
            self.notify("No results yet: nothing to plot.", severity="warning")
            return
        self.notify(f"Writing the figures of {recipe['name']}...")
        write = figures_reader(self.app.reading, recipe, self.app.results_dir, self.metric)
        read_in_thread(self, write, group="figures")

    def load(self) -> None:
        wanted, metric, reading, by = self.recipe_hash, self.metric, self.app.reading, self.pivot_by

        def read():
            from w2s_core.analysis.pgr import chain_steps, pgr_table  # numpy: off the UI thread
            from w2s_core.analysis.pivot import pivot
            from w2s_core.analysis.pivot import swept as swept_keys

            with reading() as store:
                if store is None:
                    yield ResultsLoaded([], None, [], [], metric)
                    return
                recipes = browse.recipes_with_results(store)
                recipe = next((r for r in recipes if r["hash"] == wanted), recipes[0] if recipes else None)
                rows, chains, notes, swept, pivot_by = [], [], [], [], None
                if recipe:
                    rows = pgr_table(store, recipe["hash"], metric)
                    if metric != "acc":
                        rows = with_accuracy_warnings(rows, pgr_table(store, recipe["hash"], "acc"))
                    chains = chain_steps(store, recipe["hash"], metric)
                    planned = browse.recipe_rows(store, recipe["hash"])
                    notes = missing_notes(planned, rows)
                    swept = swept_keys([job["role"] for job in planned])  # as pgr.grid_keys, from the same read
                    pivot_by = by if by in swept else None  # another recipe's key: no pivot
                    if pivot_by:
                        rows = pivot(rows, pivot_by, swept, recipe["name"])
            yield ResultsLoaded(recipes, recipe, rows, chains, metric, notes, swept, pivot_by)

        read_in_thread(self.query_one(PgrTable), read, group="results", exclusive=True)

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        """After the table showed the rows (the message bubbles up from it): the title and the grids."""
        self.recipes, recipe = message.recipes, message.recipe
        self.recipe_hash = recipe["hash"] if recipe else None
        self.swept, self.pivot_by = message.swept, message.by
        self.refresh_bindings()  # the pivot key shows for a grid recipe only
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
                    *(
                        (
                            " · grid ",
                            (" × ".join(self.swept), "bold"),
                            " · pivot ",
                            (self.pivot_by or "none", "bold"),
                            " (b)",
                        )
                        if self.swept
                        else ()
                    ),
                )
            )
        self.query_one(PgrGrid).show(message.rows, message.chains, message.metric, message.notes)
