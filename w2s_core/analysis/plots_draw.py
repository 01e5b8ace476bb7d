"""Drawing a `FigureSpec` with matplotlib's object API (no pyplot: no global figure state, so a TUI
worker thread may draw). matplotlib is imported inside the functions, so importing this module
costs nothing (`w2s --help` and the TUI start stay fast).

Every line and heatmap cell gets its spec's group id (`set_gid`), which the SVG writes as
`<g id="line-...">` / `<g id="cell-...">`; the colours come from a fixed cycle, so the same results
draw the same picture.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from w2s_core.analysis.plots_data import FigureSpec, Heatmap, Panel, Series, slug

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
PANEL_SIZE = (6.4, 4.2)  # inches, one panel


def draw(spec: FigureSpec) -> Figure:
    """The spec as a matplotlib Figure (with an Agg canvas), ready to save."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if spec.heatmap is not None:
        fig = Figure(figsize=_heatmap_size(spec.heatmap), layout="constrained")
        _heatmap(fig, fig.add_subplot(), spec.heatmap)
    else:
        cols = 1 if len(spec.panels) == 1 else 2
        rows = math.ceil(len(spec.panels) / cols)
        fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), layout="constrained")
        for i, panel in enumerate(spec.panels):
            _panel(fig.add_subplot(rows, cols, i + 1), panel)
    fig.suptitle(spec.title, fontsize="medium")
    FigureCanvasAgg(fig)
    return fig


def _series(ax: Axes, series: Series, colour: str) -> None:
    xs = [p[0] for p in series.points]
    ys = [p[1] for p in series.points]
    if series.style == "step":  # a training curve: many points, no error bars
        (line,) = ax.plot(
            xs, ys, color=colour, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.2, label=series.label
        )
        line.set_gid(series.gid)
        return
    errs = [[p[2] for p in series.points], [p[3] for p in series.points]]
    ceiling = series.style == "ceiling"
    bars = ax.errorbar(
        xs,
        ys,
        yerr=errs if any(e for side in errs for e in side) else None,
        color="black" if ceiling else colour,
        linestyle="--" if ceiling else "-",
        marker="s" if ceiling else "o",
        markersize=5,
        capsize=3,
        linewidth=1.6,
        label=series.label,
    )
    bars.lines[0].set_gid(series.gid)


def _panel(ax: Axes, panel: Panel) -> None:
    colours = iter(COLOURS * 4)
    for series in panel.series:
        _series(ax, series, "black" if series.style == "ceiling" else next(colours))
    for y in panel.refs:
        ax.axhline(y, color="grey", linewidth=0.8, linestyle=":")
    ax.set_title(panel.title, fontsize="small")
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, alpha=0.3)
    axis = panel.axis
    if axis is None:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimiser steps
        ax.set_xlabel(panel.xlabel)
    else:
        if axis.log:
            ax.set_xscale("log")
            ax.minorticks_off()  # the ticks are the models themselves
        ax.set_xticks([x for x, _ in axis.ticks], [t for _, t in axis.ticks], fontsize="small")
        ax.set_xlabel(axis.label)
        if not axis.log and axis.ticks:  # categorical: a little room either side
            ax.set_xlim(-0.5, len(axis.ticks) - 0.5)
    if panel.series:
        ax.legend(fontsize="small")


def _heatmap_size(grid: Heatmap) -> tuple[float, float]:
    return (max(4.5, 1.6 * len(grid.strong) + 2.5), max(3.0, 1.0 * len(grid.weak) + 1.8))


def _cell_text(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if math.isnan(lo) else f"{mean:.2f}\n[{lo:.2f}, {hi:.2f}]"


def _heatmap(fig: Figure, ax: Axes, grid: Heatmap) -> None:
    """One square per pair that has a row (PGR colour, white where undefined), annotated with its PGR and interval."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    values = [m for m, _, _ in grid.cells.values() if not math.isnan(m)]
    norm = Normalize(min([0.0, *values]), max([1.0, *values]))
    cmap = colormaps["viridis"]
    for (weak, strong), (mean, lo, hi) in grid.cells.items():
        x, y = grid.strong.index(strong), grid.weak.index(weak)
        colour = "white" if math.isnan(mean) else cmap(norm(mean))
        cell = Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5)
        cell.set_gid(f"cell-{slug(weak)}__{slug(strong)}")  # slug never makes "__"
        ax.add_patch(cell)
        dark = not math.isnan(mean) and norm(mean) < 0.6  # viridis is dark at its low end
        ax.text(
            x,
            y,
            _cell_text(mean, lo, hi),
            ha="center",
            va="center",
            fontsize="small",
            color="white" if dark else "black",
        )
    ax.set_xlim(-0.5, len(grid.strong) - 0.5)
    ax.set_ylim(len(grid.weak) - 0.5, -0.5)  # the first weak model on top, as in the terminal grid
    ax.set_xticks(range(len(grid.strong)), grid.strong)
    ax.set_yticks(range(len(grid.weak)), grid.weak)
    ax.set_xlabel("strong model")
    ax.set_ylabel("weak model")
    ax.set_aspect("auto")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="PGR (mean of per-seed PGR)")
