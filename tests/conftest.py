"""Shared fixtures: a filled results database, the CLI runner, waiting and Pilot settling.

`filled_results` writes a database straight through the store's API (no training): three models,
two seeds, two transfer methods and one bootstrap chain, with fixed accuracies so PGR tables,
grids and snapshots are the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from w2s_core.jobdir import JobDir
from w2s_core.status import JobStatus, RunStatus
from w2s_core.store import Store

# The modules that take longest, mostly waiting on Slurm, supervisors and subprocesses, go first: under
# `-n N --dist loadfile` (scripts/test.sh) each runs on one worker while the others take the short
# modules, instead of all of them being left for the end. The order changes no test's outcome.
LONG_FIRST = (
    "test_slurm.py",
    "test_smoke_paper.py",
    "test_end_to_end.py",
    "test_training.py",
    "test_checkpoint.py",
    "test_grid.py",
    "test_plots.py",
    "test_multiprocess.py",
    "test_tui_flows.py",
    "test_early_stopping.py",
    "test_prefetch.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


ROOT = Path(__file__).resolve().parent.parent
MODELS = ("m-small", "m-mid", "m-big")
GT_ACC = {"m-small": 0.60, "m-mid": 0.70, "m-big": 0.80}
METHODS = {"xent": 0.5, "logconf": 0.75}  # share of the gap each method recovers
SEEDS = (0, 1)
RECIPE = "grid-demo"
RECIPE_HASH = "r" * 64


@dataclass
class Filled:
    """A filled results folder: its path and {description: job hash} to pick jobs by."""

    root: Path
    hashes: dict[str, str]
    models: tuple[str, ...] = MODELS
    gt_acc: dict[str, float] = None  # type: ignore[assignment]
    seeds: tuple[int, ...] = SEEDS
    methods: dict[str, float] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.gt_acc = dict(GT_ACC)
        self.methods = dict(METHODS)


def train_in_process(job_dir: Path, spec: dict) -> None:
    """Write `spec` to `job_dir` and train it in this process, as `python -m w2s_core.training` would."""
    # imported here: most tests never train, and torch would slow every test's start
    from accelerate.state import AcceleratorState, GradientState

    from w2s_core.training import loop

    JobDir(job_dir).write_spec(spec)
    try:
        loop.run(job_dir)
    finally:  # accelerate keeps process-wide state; leave none behind for the next in-process run
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def small_recipe(name: str, models: str, data: str = "synthetic", train: str = "") -> str:
    """The smallest recipe: one seed, 40 + 20 examples of `data`, one epoch (then the extra [train]
    lines `train`, each ending in a newline), the [[models]] tables `models` and one xent transfer."""
    return (
        f'name = "{name}"\nseeds = [0]\n[data]\nname = "{data}"\nn_train = 40\nn_test = 20\n'
        f'[train]\nepochs = 1\n{train}{models}[[transfer]]\nloss = "xent"\n'
    )


def insert_job(
    store: Store,
    h: str,
    kind: str,
    model: str,
    seed: int,
    role: dict,
    recipe: str,
    spec: dict,
    *,
    weak: str | None = None,
    loss: str | None = None,
    run_id: int | None = None,
) -> None:
    """A job row as the planner writes it (folder jobs/<hash[:16]>), linked to `recipe` in `role`."""
    job = {
        "hash": h,
        "kind": kind,
        "model": model,
        "weak_model": weak,
        "loss": loss,
        "seed": seed,
        "spec": spec,
        "recipe_hash": recipe,
        "dir": f"jobs/{h[:16]}",
    }
    if run_id is not None:  # only the filled database's jobs belong to a run
        job["run_id"] = run_id
    store.upsert_job(job)
    store.link_job(recipe, h, json.dumps(role, sort_keys=True))


def _fake_job(
    store: Store,
    results: Path,
    n: int,
    name: str,
    kind: str,
    model: str,
    seed: int,
    role: dict,
    acc: float,
    run_id: int,
    weak: str | None = None,
    loss: str | None = None,
) -> str:
    h = f"{n:02d}" + hashlib.sha256(name.encode()).hexdigest()[:62]  # hex, as real job hashes
    spec = {
        "data": {"name": "synthetic", "n_train": 200},
        "train": {"epochs": 1},
        "train_split": "A" if kind == "gt" else "B",
        "predict_split": "B",
    }
    insert_job(store, h, kind, model, seed, role, RECIPE_HASH, spec, weak=weak, loss=loss, run_id=run_id)
    store.set_job_status(h, JobStatus.DONE, started_at=1_700_000_000.0, finished_at=1_700_000_060.0, exit_code=0)
    store.set_results(h, {"test_acc": acc, "test_auroc": acc + 0.05, "n_test": 1000})
    job_dir = results / "jobs" / h[:16]
    job_dir.mkdir(parents=True, exist_ok=True)
    events = [
        {
            "step": s,
            "loss": 0.7 - 0.05 * s,
            "train_acc": 0.5 + 0.02 * s,
            "examples": 10 * s,
            "examples_per_s": 20.0,
            **({"test_acc": acc - 0.01 * (5 - s)} if s % 2 == 0 else {}),
        }
        for s in range(1, 6)
    ]
    (job_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (job_dir / "log.txt").write_text(f"training {name}\nfinished {name}\n")
    store.ingest_events(h, job_dir / "events.jsonl")
    return h


def fill(results: Path) -> dict[str, str]:
    """Write the database; returns {description: job hash}."""
    hashes: dict[str, str] = {}
    with Store.open(results) as store:
        store.add_recipe(RECIPE_HASH, RECIPE, "grid-demo.toml", "name = 'grid-demo'")
        run_id = store.start_run(RECIPE_HASH, ["w2s", "run"], {})

        def job(name, kind, model, seed, role, acc, weak=None, loss=None):
            hashes[name] = _fake_job(
                store, results, len(hashes) + 1, name, kind, model, seed, role, acc, run_id, weak, loss
            )

        for seed in SEEDS:
            for m in MODELS:
                job(f"gt {m} s{seed}", "gt", m, seed, {"role": "gt", "model": m, "seed": seed}, GT_ACC[m])
            for i, weak in enumerate(MODELS):
                for strong in MODELS[i + 1 :]:
                    for method, share in METHODS.items():
                        acc = GT_ACC[weak] + share * (GT_ACC[strong] - GT_ACC[weak]) + 0.01 * seed
                        job(
                            f"{weak} to {strong} {method} s{seed}",
                            "transfer",
                            strong,
                            seed,
                            {"role": "transfer", "weak": weak, "strong": strong, "method": method, "seed": seed},
                            acc,
                            weak=weak,
                            loss=method,
                        )
            chain = list(MODELS)
            for step, (model, weak, acc) in enumerate((("m-mid", "m-small", 0.66), ("m-big", "m-mid", 0.72)), 1):
                job(
                    f"boot{step} s{seed}",
                    "bootstrap",
                    model,
                    seed,
                    {"role": "bootstrap", "chain": chain, "method": "boot-xent", "step": step, "seed": seed},
                    acc,
                    weak,
                    "xent",
                )
        store.finish_run(run_id, RunStatus.DONE)
    return hashes


@pytest.fixture
def filled_results(tmp_path: Path) -> Filled:
    """A results folder with the fixed grid-demo database (see the module docstring)."""
    return Filled(tmp_path, fill(tmp_path))


def run_w2s(results: Path, *args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """`w2s --results-dir RESULTS ARGS...` in a subprocess from the repository root, hub offline."""
    return subprocess.run(
        [sys.executable, "-m", "w2s_core.cli", "--results-dir", str(results), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=check,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


@pytest.fixture
def w2s_cli():
    """The CLI runner: `w2s_cli(results, "run", recipe)` → CompletedProcess."""
    return run_w2s


def poll_until(predicate, timeout: float = 60.0, what: str = "condition", interval: float = 0.05):
    """predicate()'s first truthy value, or AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def wait_for():
    return poll_until


async def settle_pilot(pilot) -> None:
    """Let a Pilot-driven app finish its workers and repaint."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture
def settle():
    return settle_pilot


@pytest.fixture(scope="module")
def w2s_cache(tmp_path_factory):
    """One w2s cache ($W2S_CACHE) for a test module, so each tiny model is generated once per module."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("w2s-cache")
        mp.setenv("W2S_CACHE", str(root))
        yield root
