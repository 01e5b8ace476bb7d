"""Widgets the screens share: the job table, the PGR table and heatmap grid, the curve plot and the
footer. Each carries its own DEFAULT_CSS; screen layout lives in ../app.tcss."""

from .app_footer import AppFooter
from .curve_plot import CurvePlot, thin, training_fraction
from .job_table import Column, JobTable, status_text
from .pgr_grid import PgrGrid, heat
from .pgr_table import PgrTable

__all__ = ["AppFooter", "Column", "CurvePlot", "JobTable", "PgrGrid", "PgrTable", "heat", "status_text", "thin",
           "training_fraction"]
