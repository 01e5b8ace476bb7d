"""Widgets the screens share: the job table, the PGR table and heatmap grid and the curve plot. Each carries its
own DEFAULT_CSS; screen layout lives in ../app.tcss."""

from .curve_plot import CurvePlot, thin
from .job_table import JobTable, status_text
from .pgr_grid import PgrGrid, heat
from .pgr_table import PgrTable

__all__ = ["CurvePlot", "JobTable", "PgrGrid", "PgrTable", "heat", "status_text", "thin"]
