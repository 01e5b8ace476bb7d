"""Helpers of the TUI tests: the screen as text (what a user sees, whatever the widget), and jobs
written straight into a results database (running, failed, with events) through the store's API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from conftest import insert_job
from rich.console import Console

from w2s_core.status import JobStatus
from w2s_core.store import Store


def tiny_recipe(name: str = "tiny", train: str = "", tail: str = "") -> str:
    """A valid two-model recipe on synthetic data (planned, or trained in seconds on a CPU).

    `train`: extra lines (each ending in a newline) at the end of [train]; `tail`: tables after the
    transfer (such as [launch]).
    """
    return f"""
name = "{name}"
seeds = [0]

[data]
name = "synthetic"
n_train = 80
n_test = 40
seed = 0

[train]
mode = "finetune"
epochs = 1
batch_size = 16
minibatch_size = 16
max_length = 16
{train}
[[models]]
name = "small"
path = "tiny-random-gpt2"
tiny = {{ hidden_size = 16, num_layers = 1 }}

[[models]]
name = "big"
path = "tiny-random-bert"
tiny = {{ hidden_size = 32, num_layers = 1 }}

[[transfer]]
loss = "xent"
{tail}"""


TINY = tiny_recipe()  # planned, never trained by the tests that import it


def screen_text(app) -> str:
    """The current screen as the terminal shows it (toasts included), one line per row."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def line_with(text: str, needle: str) -> str:
    """The first line of `text` holding `needle` (AssertionError with the screen when none does)."""
    for line in text.splitlines():
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} on the screen:\n{text}")


def add_job(
    results: Path,
    n: int,
    *,
    status: str = JobStatus.RUNNING,
    kind: str = "gt",
    model: str = "m-one",
    seed: int = 0,
    started_at: float | None = None,
    events: list[dict] = (),
    error: str | None = None,
    recipe: str = "r" * 64,
    role: dict | None = None,
    weak: str | None = None,
    loss: str | None = None,
    results_values: dict | None = None,
) -> str:
    """A job in the database of `results` (created if need be); returns its hash."""
    h = f"{n:02d}" + "e" * 62
    results.mkdir(parents=True, exist_ok=True)
    with Store.open(results) as store:
        if not any(r["hash"] == recipe for r in store.recipes()):
            store.add_recipe(recipe, "tests", "tests.toml", "name = 'tests'")
        spec = {"data": {"name": "synthetic", "n_train": 200}, "train": {"epochs": 1}}
        role = role or {"role": "gt", "model": model, "seed": seed}
        insert_job(store, h, kind, model, seed, role, recipe, spec, weak=weak, loss=loss)
        fields = {"started_at": started_at or time.time() - 100}
        if error is not None:
            fields["error"] = error
        store.set_job_status(h, status, **fields)
        if results_values:
            store.set_results(h, results_values)
        job_dir = results / "jobs" / h[:16]
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "log.txt").write_text(f"job {n}\n")
        if events:
            append_events(results, h, events, store)
    return h


def append_events(results: Path, h: str, events: list[dict], store: Store | None = None) -> None:
    """Append events to a job's events.jsonl and ingest them, as the supervisor does."""
    path = results / "jobs" / h[:16] / "events.jsonl"
    with open(path, "a") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)
    if store is None:
        with Store.open(results) as own:
            own.ingest_events(h, path)
    else:
        store.ingest_events(h, path)
