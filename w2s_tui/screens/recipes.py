"""Recipes: the TOML recipes in ./recipes/, the current directory and the bundled ones; a preview of
the expanded plan with what is already cached; validation errors inline; launch with one key."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from w2s_core import cli
from w2s_core.errors import W2SError
from w2s_core.status import JobStatus

from .. import control
from ..messages import PlanReady
from ..workers import read_in_thread


def find_recipes(cwd: Path | None = None) -> list[Path]:
    """*.toml in cwd and cwd/recipes, then the recipes bundled next to the package (deduplicated)."""
    cwd = cwd or Path.cwd()
    found: dict[Path, None] = {}
    for folder in (cwd / "recipes", cwd, cli.DEFAULT_RECIPE.parent):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                if path.name != "pyproject.toml":
                    found.setdefault(path.resolve())
    return list(found)


def plan_preview(path: Path, done: set[str]) -> tuple[str, bool]:
    """The recipe's plan as Rich markup, each job marked cached or to run, and whether it is valid.
    Raises W2SError, with the file and key, for an invalid recipe."""
    from w2s_core.spec.plan import build_plan, describe  # numpy and the data registry: off the start-up path
    from w2s_core.spec.recipe import load_recipe

    recipe = load_recipe(path)
    plan = build_plan(recipe)
    cached = sum(j.key in done for j in plan.jobs)
    lines = [f"[b]{escape(recipe.name)}[/b]  {len(plan.jobs)} jobs · {cached} cached · "
             f"{len(plan.jobs) - cached} to run · seeds {recipe.seeds}",
             f"models: {', '.join(m['name'] for m in recipe.models)}",
             f"pairs: {len(recipe.pairs)} · methods: {', '.join(t['name'] for t in recipe.transfers) or '-'} · "
             f"chains: {', '.join(' > '.join(c['models']) for c in recipe.chains) or '-'}", ""]
    for job in plan.jobs:
        state = "[green]cached[/green]" if job.key in done else "[yellow]to run [/yellow]"
        lines.append(f"{state} {job.short} {escape(describe(job))}")
    lines.append("\n[b]l[/b] launches it; jobs keep running if you quit.")
    return "\n".join(lines), True


class RecipesScreen(Screen):
    BINDINGS = [
        Binding("l", "launch", "Launch", id="recipes.launch"),
        Binding("r", "rescan", "Rescan", id="recipes.rescan"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[Path] = []
        self.valid: dict[Path, bool] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield OptionList(id="recipe-list")
            with VerticalScroll(id="preview-pane"):
                yield Static("Select a recipe to preview its plan.", id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Recipes"
        self.action_rescan()

    def action_rescan(self) -> None:
        self.paths = find_recipes()
        cwd = Path.cwd()
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p), id=str(p))
                             for p in self.paths])
        if not self.paths:
            self.query_one("#preview", Static).update(f"No *.toml recipes in {cwd} or {cwd / 'recipes'}.")
        else:
            options.highlighted = 0
        options.focus()

    def selected(self) -> Path | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        return Path(options.get_option_at_index(options.highlighted).id)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        path = self.selected()
        if path:
            self.preview(path)

    def preview(self, path: Path) -> None:
        reading = self.app.reading

        def read():
            try:
                with reading() as store:
                    done = {j["hash"] for j in store.jobs(status=JobStatus.DONE)} if store else set()
                text, ok = plan_preview(path, done)
            except W2SError as exc:
                text, ok = f"[b red]Invalid recipe[/b red]\n\n[red]{escape(str(exc))}[/red]", False
            yield PlanReady(path, text, ok)

        read_in_thread(self, read, group="preview", exclusive=True)

    def on_plan_ready(self, message: PlanReady) -> None:
        self.valid[message.path] = message.ok
        if message.path == self.selected():
            self.query_one("#preview", Static).update(message.text)

    def action_launch(self) -> None:
        path = self.selected()
        if path is None:
            return
        if not self.valid.get(path):
            self.notify(f"{path.name} is not valid (or not checked yet); fix it first", severity="error")
            return
        try:
            proc, log = control.launch(path, self.app.results_dir)
        except OSError as exc:
            self.notify(f"could not start w2s run: {exc}", severity="error")
            return
        self.app.launches.append((proc, log))
        self.notify(f"launched {path.name} (pid {proc.pid}); output in {log}")
        self.app.switch_mode("runs")
