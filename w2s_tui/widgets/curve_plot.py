"""A terminal line plot of metric curves (loss, α, accuracies), thinned so a redraw costs the same at
step 100 and at step 100,000; a plot with no points says "no data" rather than drawing empty axes."""

from __future__ import annotations

from bisect import bisect_right

from textual_plotext import PlotextPlot

from w2s_core.jobdir import Event

MAX_POINTS = 400  # per curve drawn; a terminal plot has fewer columns than that anyway

Points = list[tuple[float, float]]


def thin(points: Points, most: int = MAX_POINTS) -> Points:
    """Every k-th point and the last."""
    if len(points) <= most:
        return points
    k = -(-len(points) // most)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def training_fraction(points: Points, series: dict[str, Points], total_examples: float | None) -> Points:
    """`points` (step, value) with the step replaced by the fraction of training done by then: the
    examples seen (the job's `examples` curve) over its total when both are known, else the step over
    the job's last step. Curves of runs of different lengths then share one 0-1 axis."""
    if not points:
        return []
    examples = series.get(Event.EXAMPLES) or []
    if total_examples and examples:
        steps = [s for s, _ in examples]

        def at(step: float) -> float:
            i = bisect_right(steps, step) - 1
            return (examples[i][1] if i >= 0 else 0.0) / total_examples

        return [(at(s), v) for s, v in points]
    last = max(s for curve in series.values() for s, _ in curve) or 1
    return [(s / last, v) for s, v in points]


class CurvePlot(PlotextPlot):
    """Curves by label, redrawn whole on each `plot` call."""

    def plot(self, title: str, curves: dict[str, Points], xlabel: str = "step") -> list[str]:
        """Draw the curves that have points; returns the labels of those that have none."""
        plt = self.plt
        plt.clear_data()
        empty = [label for label, points in curves.items() if not points]
        drawn = {label: thin(points) for label, points in curves.items() if points}
        plt.title(title if drawn else f"{title}: no data")
        plt.xlabel(xlabel if drawn else "")
        for label, points in drawn.items():
            plt.plot([p[0] for p in points], [p[1] for p in points], label=label)
        self.refresh()
        return empty
