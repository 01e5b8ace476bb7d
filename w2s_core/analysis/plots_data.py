"""What `w2s plot` draws, as plain data: figure specs built from the PGR rows and the recipe's jobs, no matplotlib.

`plots.py` turns each `FigureSpec` into files (`plots_draw.py` draws it). The numbers are the PGR
table's (`pgr.pgr_table`), so a figure always agrees with `w2s results`: a point is the mean over
seeds and its error bar the 95% Student-t interval over the same seeds (`stats.aggregate`, the
interval the PGR columns carry); one seed draws no bar.

The x axis of the size figures is each model's parameter count (`Result.N_PARAMS`, log scale), read
from its finished jobs. Results recorded before jobs counted their parameters fall back to the
recipe's model order (categorical), and the axis label says so. A recipe with a grid gets one
figure set per grid point, the point in each title and file name (`point_label`, `point_slug`).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from w2s_core.analysis import stats
from w2s_core.analysis.figures import figure
from w2s_core.analysis.pgr import job_model, task_of
from w2s_core.jobdir import Result
from w2s_core.status import JobStatus

METRIC_NAMES = {"acc": "test accuracy", "auroc": "test AUROC"}


@dataclass
class Series:
    """One line: its SVG group id (`line-...`, what tests count), legend label, points and look."""

    gid: str
    label: str
    points: list[tuple[float, float, float, float]]  # x, y, error below, error above (0: no bar)
    style: str = "line"  # "line" (with error bars), "ceiling" (black, dashed), "step" (a training curve)


@dataclass
class Axis:
    """The size figures' x axis: each model's position, the tick labels, and what the axis means."""

    positions: dict[str, float]
    ticks: list[tuple[float, str]]
    label: str
    log: bool


@dataclass
class Panel:
    """One set of axes: lines over model size (`axis`) or over training steps (no axis)."""

    title: str
    ylabel: str
    series: list[Series]
    axis: Axis | None = None
    xlabel: str = "optimiser step"
    refs: tuple[float, ...] = ()  # horizontal reference lines (PGR 0 and 1)


@dataclass
class Heatmap:
    """The weak×strong PGR grid of one method: a cell (mean, lo, hi) per pair that has a row."""

    weak: list[str]
    strong: list[str]
    cells: dict[tuple[str, str], tuple[float, float, float]]


@dataclass
class FigureSpec:
    """One figure: the file name's stem, its title, and its panels or its heatmap."""

    stem: str
    title: str
    panels: list[Panel] = field(default_factory=list)
    heatmap: Heatmap | None = None


def slug(text: object) -> str:
    """A file-name and XML-id safe form of a name: letters, digits, `.`, `+`, `-`; the rest `_`."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_") or "_"


def point_label(grid: dict) -> str:
    """A grid point for a title: "lr=1e-05, alpha=0.5" ("" without a grid)."""
    return ", ".join(f"{k}={v}" for k, v in grid.items())


def point_slug(grid: dict) -> str:
    """A grid point for a file name: "lr-1e-05_alpha-0.5" ("" without a grid)."""
    return "_".join(f"{slug(k)}-{slug(v)}" for k, v in grid.items())


def interval(values: list[float], unit: bool = False) -> tuple[float, float, float]:
    """(mean, error below, error above) over seeds: the 95% t interval, no bar (0) below two seeds.
    `unit`: the figure is an accuracy or AUROC, and its bar stops at 0 and 1 (with two seeds the t
    interval is ±12.7 standard errors: the bar would otherwise say that accuracy could pass 1)."""
    agg = stats.aggregate(values)
    mean, lo, hi = agg["mean"], agg["lo"], agg["hi"]
    if math.isnan(lo):
        return mean, 0.0, 0.0
    if unit:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return mean, mean - lo, hi - mean


def human(n: float) -> str:
    """A parameter count as people write it: 22.6M, 1.5B, 14.5k."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


# --- the recipe's models ----------------------------------------------------------------------


def model_sizes(planned: list[dict]) -> tuple[dict[str, float], list[str]]:
    """({model: parameters} from finished jobs that recorded them, the recipe's models in order)."""
    sizes: dict[str, float] = {}
    order: list[str] = []
    for job in planned:
        role = job["role"]
        if role["role"] == "gt" and role["model"] not in order:
            order.append(role["model"])
        if role["role"] in ("gt", "transfer", "bootstrap") and job["status"] == JobStatus.DONE:
            n = job["results"].get(Result.N_PARAMS)
            if n is not None and not math.isnan(n):
                sizes.setdefault(job_model(role), float(n))
    return sizes, order


def size_axis(order: list[str], sizes: dict[str, float]) -> Axis:
    """Parameters on a log scale when every model recorded them, else the recipe's model order."""
    missing = [m for m in order if m not in sizes]
    if order and not missing:
        ticks: dict[float, list[str]] = defaultdict(list)
        for m in order:
            ticks[sizes[m]].append(m)
        return Axis(
            {m: sizes[m] for m in order},
            [(x, " / ".join(names) + f"\n{human(x)}") for x, names in sorted(ticks.items())],
            "strong model size (parameters, log scale)",
            log=True,
        )
    why = (
        "parameter counts not recorded"
        if len(missing) == len(order)
        else "no parameter count for " + ", ".join(missing)
    )
    positions = {m: float(i) for i, m in enumerate(order)}
    return Axis(positions, [(x, m) for m, x in positions.items()], f"strong model, in recipe order ({why})", log=False)


# --- rows by task and grid point --------------------------------------------------------------


def grid_key(grid: dict | None) -> str:
    return json.dumps(grid or {}, sort_keys=True, default=str)


@dataclass
class Point:
    """The rows of one task at one grid point, and the GT figure of each model per seed they carry."""

    task: str | None
    grid: dict
    rows: list[dict]
    gt: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))

    def name(self, kind: str, *parts: object) -> str:
        """A file stem: the figure's kind, the task, its other parts (method...), the grid point."""
        bits = [kind, slug(self.task) if self.task else "", *(slug(p) for p in parts), point_slug(self.grid)]
        return "-".join(b for b in bits if b)

    def title(self, text: str) -> str:
        where = ", ".join(x for x in (str(self.task) if self.task else "", point_label(self.grid)) if x)
        return f"{text} ({where})" if where else text

    def gt_point(self, model: str) -> tuple[float, float, float] | None:
        seeds = self.gt.get(model)
        return interval(list(seeds.values()), unit=True) if seeds else None


def points(rows: list[dict]) -> list[Point]:
    """The rows split by (task, grid point), in table order; each point's GT figures per model and seed
    (a row's weak figure is its weak model's GT job, its ceiling the strong model's)."""
    found: dict[tuple[str | None, str], Point] = {}
    for row in rows:
        grid = row.get("grid") or {}
        point = found.setdefault((row["task"], grid_key(grid)), Point(row["task"], dict(grid), []))
        point.rows.append(row)
        for seed in row["per_seed"]:
            if row["kind"] != "prompt":  # a prompt row's weak side may itself be a prompt job
                point.gt[row["weak"]].setdefault(seed["seed"], seed["weak"])
            point.gt[row["strong"]].setdefault(seed["seed"], seed["ceiling"])
    return list(found.values())


@dataclass
class ChainStep:
    """One finished bootstrap step: where it belongs (task, grid point, chain, method) and its figure."""

    task: str | None
    grid: dict
    chain: tuple[str, ...]
    method: str
    step: int
    job_hash: str
    value: float


def chain_values(planned: list[dict], metric: str) -> list[ChainStep]:
    """Every finished bootstrap step of a recipe's jobs (`queries.recipe_rows`) with its selected figure in `metric`."""
    out = []
    for job in planned:
        role = job["role"]
        if role["role"] != "bootstrap" or job["status"] != JobStatus.DONE:
            continue
        value = figure(job["results"], metric, "selected")
        if not math.isnan(value):
            grid = role.get("grid") or {}
            out.append(
                ChainStep(
                    task_of(job), grid, tuple(role["chain"]), role["method"], role["step"], job["job_hash"], value
                )
            )
    return out


def steps_of(found: list[ChainStep], point: Point, chain: list[str], method: str) -> dict[int, list[float]]:
    """{step: [figure per seed]} of one chain at one grid point. A point's row names only the values its
    jobs share (an xent chain under an alpha sweep is the same jobs at every alpha): a step belongs to
    the point when its own grid point has all of the row's values, and each job counts once."""
    wanted = point.grid.items()
    seen: dict[str, ChainStep] = {}
    for s in found:
        if s.task == point.task and s.chain == tuple(chain) and s.method == method and wanted <= s.grid.items():
            seen.setdefault(s.job_hash, s)
    out: dict[int, list[float]] = defaultdict(list)
    for s in seen.values():
        out[s.step].append(s.value)
    return dict(out)
