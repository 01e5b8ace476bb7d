"""Each figure `w2s plot` draws, built as a `FigureSpec` from one task's rows at one grid point.

    accuracy    test accuracy against strong-model size: one line per weak model (its students'
                w2s figure) and the ceiling (each model trained on ground truth): the paper's Fig. 3
    pgr         PGR against strong-model size, one line per weak model, reference lines at 0 and 1
    heatmap     the weak×strong PGR grid of one method, each cell annotated with PGR and its interval
    bootstrap   a chain's steps against direct transfer from its first model, with the ceiling
    prompting   k-shot prompting against finetuning (the prompted model's GT job), per model size
    curves      one job's training: loss, α when logged, test figure, agreement with its labels

Every line's SVG group id starts with `line-`, every heatmap cell's with `cell-`, so a test (or a
script) can count them in the SVG.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from w2s_core.analysis.plots_data import METRIC_NAMES, Axis, FigureSpec, Heatmap, Panel, Point, Series, interval, slug
from w2s_core.jobdir import Event
from w2s_core.store import queries

if TYPE_CHECKING:
    from w2s_core.store import Store


def ordered(names: set[str], order: list[str]) -> list[str]:
    """Model names in the recipe's order; names it does not list (a prompt job as weak) after, sorted."""
    return [m for m in order if m in names] + sorted(names - set(order))


def methods(rows: list[dict], kind: str) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows if r["kind"] == kind))


def _at(axis: Axis, model: str, value: tuple[float, float, float] | None) -> list[tuple]:
    """One point at `model`'s x, or none when the model is off the axis or the value undefined."""
    if value is None or model not in axis.positions or math.isnan(value[0]):
        return []
    return [(axis.positions[model], *value)]


def _w2s(row: dict) -> tuple[float, float, float]:
    return interval([s["w2s"] for s in row["per_seed"]], unit=True)


def _ceiling(point: Point, axis: Axis, models: list[str]) -> Series:
    pts = [p for m in models for p in _at(axis, m, point.gt_point(m))]
    return Series("line-ceiling", "ceiling (trained on ground truth)", sorted(pts), "ceiling")


def _by_weak(rows: list[dict], order: list[str], axis: Axis, value) -> list[Series]:
    """One line per weak model: `value(row)` at each of its strong models."""
    out = []
    for weak in ordered({r["weak"] for r in rows}, order):
        pts = sorted(p for r in rows if r["weak"] == weak for p in _at(axis, r["strong"], value(r)))
        if pts:
            out.append(Series(f"line-weak-{slug(weak)}", f"weak: {weak}", pts))
    return out


def accuracy_figure(point: Point, method: str, axis: Axis, order: list[str], metric: str) -> FigureSpec:
    rows = [r for r in point.rows if r["kind"] == "transfer" and r["method"] == method]
    series = _by_weak(rows, order, axis, _w2s) + [_ceiling(point, axis, ordered(set(point.gt), order))]
    name = METRIC_NAMES[metric]
    panel = Panel(f"{name} of weak-to-strong students", name, series, axis)
    return FigureSpec(
        point.name("accuracy", method), point.title(f"{name} against strong-model size: {method}"), [panel]
    )


def pgr_figure(point: Point, method: str, axis: Axis, order: list[str]) -> FigureSpec:
    rows = [r for r in point.rows if r["kind"] == "transfer" and r["method"] == method]

    def pgr(row: dict) -> tuple[float, float, float]:
        if math.isnan(row["pgr_lo"]):
            return row["pgr_mean"], 0.0, 0.0
        return row["pgr_mean"], row["pgr_mean"] - row["pgr_lo"], row["pgr_hi"] - row["pgr_mean"]

    panel = Panel(
        "mean of per-seed PGR, 95% interval",
        "performance gap recovered",
        _by_weak(rows, order, axis, pgr),
        axis,
        refs=(0.0, 1.0),
    )
    return FigureSpec(point.name("pgr", method), point.title(f"PGR against strong-model size: {method}"), [panel])


def heatmap_figure(point: Point, method: str, order: list[str]) -> FigureSpec:
    rows = [r for r in point.rows if r["kind"] == "transfer" and r["method"] == method]
    grid = Heatmap(
        ordered({r["weak"] for r in rows}, order),
        ordered({r["strong"] for r in rows}, order),
        {(r["weak"], r["strong"]): (r["pgr_mean"], r["pgr_lo"], r["pgr_hi"]) for r in rows},
    )
    return FigureSpec(point.name("heatmap", method), point.title(f"PGR, weak × strong: {method}"), heatmap=grid)


def bootstrap_figure(point: Point, row: dict, steps: dict[int, list[float]], axis: Axis, metric: str) -> FigureSpec:
    """A chain's students step by step (step 0: its first model's GT job) against direct transfer
    from the first model to each later one (every transfer method that has those rows), and the ceiling."""
    chain, start = row["chain"], point.gt_point(row["chain"][0])
    boot = _at(axis, chain[0], start) + [
        p
        for k, model in enumerate(chain[1:], 1)
        if steps.get(k)
        for p in _at(axis, model, interval(steps[k], unit=True))
    ]
    series = [Series("line-bootstrap", f"bootstrap: {' > '.join(chain)}", boot)]
    direct = [r for r in point.rows if r["kind"] == "transfer" and r["weak"] == chain[0] and r["strong"] in chain]
    for method in methods(direct, "transfer"):
        pts = [p for r in direct if r["method"] == method for p in _at(axis, r["strong"], _w2s(r))]
        series.append(
            Series(
                f"line-direct-{slug(method)}",
                f"direct {method}: {chain[0]} > each",
                _at(axis, chain[0], start) + sorted(pts),
            )
        )
    series.append(_ceiling(point, axis, chain))
    name = METRIC_NAMES[metric]
    panel = Panel(f"chain {row['method']}", name, series, axis)
    return FigureSpec(
        point.name("bootstrap", row["method"]),
        point.title(f"bootstrapping against direct transfer: {row['method']}"),
        [panel],
    )


def prompting_figure(point: Point, axis: Axis, order: list[str], metric: str) -> FigureSpec:
    """Each k-shot prompting baseline's accuracy per prompted model, against the same model finetuned."""
    rows = [r for r in point.rows if r["kind"] == "prompt"]
    series = []
    for method in methods(rows, "prompt"):
        pts = sorted(p for r in rows if r["method"] == method for p in _at(axis, r["strong"], _w2s(r)))
        series.append(Series(f"line-prompt-{slug(method)}", f"{method} prompting", pts))
    bases = ordered({r["strong"] for r in rows}, order)
    finetuned = sorted(p for m in bases for p in _at(axis, m, point.gt_point(m)))
    series.append(Series("line-finetuned", "finetuned on ground truth", finetuned, "ceiling"))
    name = METRIC_NAMES[metric]
    return FigureSpec(
        point.name("prompting"), point.title("prompting against finetuning"), [Panel(name, name, series, axis)]
    )


# --- one job's training curves -----------------------------------------------------------------

CURVE_PANELS = (  # (title, y label, [(metric key, legend label)]); a panel with no logged key is left out
    ("loss", "loss", [(Event.LOSS, "training loss"), (Event.VAL_LOSS, "validation loss")]),
    ("α (confidence weight)", "α", [(Event.ALPHA, "α")]),
)


def curves_figure(store: Store, job: dict, metric: str) -> FigureSpec | None:
    """Loss, α, the test figure and the agreement with the job's own labels (weak labels for a
    transfer or chain step; ground truth for a GT job) over optimiser steps; None when nothing is logged."""
    series, _ = queries.metric_series(store, job["hash"])
    weak = job["kind"] in ("transfer", "bootstrap")
    labels = "weak labels" if weak else "ground-truth labels"
    agreement = (
        f"agreement with its {labels}",
        "agreement",
        [(Event.TRAIN_ACC, "training batches"), (Event.VAL_ACC, "held-out validation slice")],
    )
    tests = {"acc": [(Event.TEST_ACC, "test accuracy")], "auroc": [(Event.TEST_AUROC, "test AUROC")]}[metric]
    panels = []
    for title, ylabel, keys in (*CURVE_PANELS, ("on the test set", METRIC_NAMES[metric], tests), agreement):
        lines = [
            Series(f"line-{slug(key)}", label, [(float(s), float(v), 0.0, 0.0) for s, v in series[key]], "step")
            for key, label in keys
            if series.get(key)
        ]
        if lines:
            panels.append(Panel(title, ylabel, lines))
    if not panels:
        return None
    what = job["model"] + (f" ← {job['weak_model']} ({job['loss']})" if job.get("weak_model") else "")
    return FigureSpec(f"curves-{job['hash'][:12]}", f"training of job {job['hash'][:12]}: {job['kind']} {what}", panels)
