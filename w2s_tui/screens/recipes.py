"""Recipes: the TOML recipes in ./recipes/, the current directory and the bundled ones, listed by
folder, each by its name in that folder (so a long path never wraps the list: the preview's first line
names the file by its short path, `short_path`, and the list's tooltip gives the full one); a preview
of the expanded plan with what is already done, running or still to run; validation errors inline;
launch with one key into the results folder the app has open.

The preview is read again whenever the database changes (a launched run finishing its jobs), and `l`
plans once more before it launches, so it never starts a run with nothing to do. A launch that fails
keeps its output on this screen until dismissed (`x`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option

from w2s_core import cli
from w2s_core.errors import W2SError
from w2s_core.status import ACTIVE, JobStatus

if TYPE_CHECKING:
    from w2s_core.spec.recipe import Recipe

from .. import control
from ..messages import PlanReady
from ..widgets import AppFooter
from ..workers import read_in_thread

DB_CHECK_S = 2.0  # how often the preview checks whether the database changed


def recipe_folders(cwd: Path | None = None) -> list[tuple[str, Path]]:
    """(label, folder) where recipes are looked for, in order."""
    cwd = cwd or Path.cwd()
    return [("./recipes", cwd / "recipes"), (". (here)", cwd), ("bundled with w2s", cli.DEFAULT_RECIPE.parent)]


def find_recipes(cwd: Path | None = None) -> dict[Path, str]:
    """{recipe path: the label of the folder it was found in}: *.toml in cwd/recipes, cwd, then the
    recipes bundled next to the package (each file once, under the first folder that has it)."""
    found: dict[Path, str] = {}
    for label, folder in recipe_folders(cwd):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                if path.name != "pyproject.toml":
                    found.setdefault(path.resolve(), label)
    return found


def short_path(path: Path, cwd: Path | None = None, home: Path | None = None) -> str:
    """How a recipe file reads in one short line: relative to the current folder when it is under it
    (`recipes/demo.toml`), else under the home folder as `~/...`, else its name alone."""
    cwd = (cwd or Path.cwd()).resolve()
    home = (home or Path.home()).resolve()
    path = path.resolve()
    for base, prefix in ((cwd, ""), (home, "~/")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return path.name


@dataclass
class Counts:
    """A plan's jobs by what a launch would do with them."""

    jobs: int
    done: int
    active: int  # queued or running already

    @property
    def to_run(self) -> int:
        return self.jobs - self.done - self.active


def part_summary(part: Recipe, suite: bool) -> str:
    """A recipe's models, pairs, methods, chains and stages; a suite's, one block per task."""
    from w2s_core.spec.recipe import data_name

    stages = [f"prompt {', '.join(part.prompt_jobs())}"] if part.prompts else []
    stages += [f"generative {', '.join(part.generative)}"] if part.generative else []
    return (
        (f"task {part.name} ({data_name(part.data)}, {part.data.get('kind', 'classify')})\n" if suite else "")
        + f"models: {', '.join(m['name'] for m in part.models)}\n"
        + f"pairs: {len(part.pairs)} · methods: {', '.join(t['name'] for t in part.transfers) or '-'} · "
        + f"chains: {', '.join(' > '.join(c['models']) for c in part.chains) or '-'}\n"
        + (f"{' · '.join(stages)}\n" if stages else "")
    )


def plan_preview(path: Path, states: dict[str, str], results_dir: str | None = None) -> tuple[Text, Counts]:
    """The recipe's plan, each job marked done (cached), queued/running or to run, and its counts.
    Raises W2SError, with the file and key, for an invalid recipe. Never markup: names show as written."""
    from w2s_core.spec.plan import build_plan, describe  # numpy and the data registry: off the start-up path
    from w2s_core.spec.recipe import load_recipe

    recipe = load_recipe(path)
    plan = build_plan(recipe)
    state = {job.key: states.get(job.key) for job in plan.jobs}
    counts = Counts(
        len(plan.jobs), sum(s == JobStatus.DONE for s in state.values()), sum(s in ACTIVE for s in state.values())
    )
    text = Text.assemble(
        (recipe.name, "bold"),
        f"  {counts.jobs} jobs · {counts.done} cached · ",
        *([f"{counts.active} queued or running · "] if counts.active else []),
        f"{counts.to_run} to run · seeds {recipe.seeds}\n",
        *(part_summary(part, recipe.is_suite) for part in recipe.parts),
        "\n",
    )
    for job in plan.jobs:
        s = state[job.key]
        mark = (
            ("cached ", "green")
            if s == JobStatus.DONE
            else ("running", "cyan")
            if s in ACTIVE
            else ("to run ", "yellow")
        )
        text.append_text(Text.assemble(mark, f" {job.short} {describe(job)}\n"))
    where = f" into {results_dir}" if results_dir else ""
    text.append_text(Text.assemble("\n", ("l", "bold"), f" launches it{where}; jobs keep running if you quit."))
    return text, counts


class RecipesScreen(Screen):
    BINDINGS = [
        Binding("l", "launch", "Launch", id="recipes.launch"),
        Binding("r", "rescan", "Rescan", id="recipes.rescan"),
        Binding("x", "dismiss_error", "Dismiss error", id="recipes.dismiss"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[Path, str] = {}
        self.plans: dict[Path, PlanReady] = {}  # the last plan of each recipe previewed

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="launch-error")
        with Horizontal():
            yield OptionList(id="recipe-list")
            with VerticalScroll(id="preview-pane"):
                yield Static("Select a recipe to preview its plan.", id="preview")
        yield AppFooter()

    def on_mount(self) -> None:
        self.sub_title = self.app.where("Recipes")
        self.action_rescan()
        self.show_launch_error()
        self.set_interval(DB_CHECK_S, self._check_database)

    def on_screen_resume(self) -> None:
        self.show_launch_error()
        self._refresh_preview()

    def _database_signature(self) -> tuple:
        """The database's and its write-ahead log's sizes and times: they change when a job's state does."""
        db = self.app.results_dir / "w2s.db"
        stats = []
        for path in (db, db.with_name(db.name + "-wal")):
            try:
                st = path.stat()
                stats.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append(None)
        return tuple(stats)

    def _check_database(self) -> None:
        path = self.selected()
        plan = self.plans.get(path) if path else None
        if self.is_current and plan is not None and plan.seen != self._database_signature():
            self.preview(plan.path)

    def _refresh_preview(self) -> None:
        path = self.selected()
        if path:
            self.preview(path)

    def action_rescan(self) -> None:
        """List the recipes again, keeping the one selected."""
        keep = self.selected()
        self.paths = find_recipes()
        options = self.query_one(OptionList)
        options.clear_options()
        label = None
        for path, folder in self.paths.items():
            if folder != label:
                label = folder
                options.add_option(Option(Text(folder, style="dim italic"), disabled=True))
            options.add_option(Option(Text(path.name), id=str(path)))  # one line, cut with … (app.tcss)
        if not self.paths:
            cwd = Path.cwd()
            self.query_one("#preview", Static).update(Text(f"No *.toml recipes in {cwd} or {cwd / 'recipes'}."))
        else:
            ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
            options.highlighted = ids.index(str(keep)) if keep and str(keep) in ids else 1
        options.focus()

    def selected(self) -> Path | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        option_id = options.get_option_at_index(options.highlighted).id
        return Path(option_id) if option_id else None

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        path = self.selected()
        self.query_one(OptionList).tooltip = str(path) if path else None  # the full path, on hover
        self._refresh_preview()

    def preview(self, path: Path, launch: bool = False) -> None:
        """Plan `path` against the database in a worker; with `launch`, launch it after if there is work."""
        reading, results_dir, seen = self.app.reading, self.app.where(), self._database_signature()

        def read():
            counts = None
            try:
                with reading() as store:
                    wanted = [JobStatus.DONE, *ACTIVE]
                    states = {j["hash"]: j["status"] for j in store.jobs(status=wanted)} if store else {}
                text, counts = plan_preview(path, states, results_dir)
            except W2SError as exc:
                text = Text.assemble(("Invalid recipe", "bold red"), "\n\n", (str(exc), "red"))
            text = Text.assemble((short_path(path), "dim"), "\n", text)  # which file, in full in the tooltip
            yield PlanReady(path, text, counts is not None, counts.to_run if counts else 0, seen, launch)

        read_in_thread(self, read, group="preview", exclusive=True)

    def on_plan_ready(self, message: PlanReady) -> None:
        self.plans[message.path] = message
        if message.path == self.selected():
            self.query_one("#preview", Static).update(message.text)
        if message.launch:
            self.launch(message)

    def action_launch(self) -> None:
        """Launch if the plan has work; a plan older than the database's last change is made again
        first (jobs may have finished since), and the launch follows it."""
        path = self.selected()
        if path is None:
            return
        plan = self.plans.get(path)
        if plan is None or (plan.ok and plan.seen != self._database_signature()):
            self.preview(path, launch=True)
            return
        self.launch(plan)

    def launch(self, plan: PlanReady) -> None:
        path = plan.path
        if not plan.ok:
            self.notify(f"{path.name} is not valid; fix it first (the errors are in the preview)", severity="error")
            return
        if plan.to_run == 0:
            self.notify(f"nothing to run: every job of {path.name} is done, queued or running", severity="warning")
            return
        try:
            proc, log = control.launch(path, self.app.results_dir)
        except OSError as exc:
            self.notify(f"could not start w2s run: {exc}", severity="error")
            return
        self.app.launches.append((proc, log))
        self.notify(
            f"launched {path.name} (pid {proc.pid}): {plan.to_run} jobs into {self.app.where()}; output in {log}"
        )
        self.app.switch_mode("runs")

    def show_launch_error(self) -> None:
        """The last failed launch's output, kept until `x` dismisses it."""
        error, panel = self.app.launch_error, self.query_one("#launch-error", Static)
        panel.display = error is not None
        self.refresh_bindings()
        if error is not None:
            panel.update(
                Text.assemble(
                    (f"w2s run {error.recipe} exited with {error.returncode}", "bold"),
                    f" (full output: {error.log}; x dismisses)\n",
                    "\n".join(error.lines),
                )
            )

    def action_dismiss_error(self) -> None:
        self.app.launch_error = None
        self.show_launch_error()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """`x` is offered only while a failed launch's output is shown."""
        return self.app.launch_error is not None if action == "dismiss_error" else True
