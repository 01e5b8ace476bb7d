"""A terminal line plot of metric curves (loss, α, accuracies), thinned so a redraw costs the same at
step 100 and at step 100,000."""

from __future__ import annotations

from textual_plotext import PlotextPlot

MAX_POINTS = 400  # per curve drawn; a terminal plot has fewer columns than that anyway

Points = list[tuple[int, float]]


def thin(points: Points, most: int = MAX_POINTS) -> Points:
    """Every k-th point and the last."""
    if len(points) <= most:
        return points
    k = -(-len(points) // most)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


class CurvePlot(PlotextPlot):
    """Curves by label, redrawn whole on each `plot` call."""

    def plot(self, title: str, curves: dict[str, Points]) -> list[str]:
        """Draw the curves that have points; returns the labels of those that have none."""
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        empty = []
        for label, points in curves.items():
            points = thin(points)
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], label=label)
            else:
                empty.append(label)
        self.refresh()
        return empty
