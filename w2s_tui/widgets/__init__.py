"""Widgets the screens share: the job table, the PGR table and heatmap grid, the curve plot, the GPU
panel and the footer. Each carries its own DEFAULT_CSS; screen layout lives in ../app.tcss.

A widget's module is imported when it is first asked for, so the Runs screen starts without the
plotting library behind CurvePlot.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app_footer import AppFooter
    from .curve_plot import CurvePlot, thin, training_fraction
    from .gpu_panel import GpuPanel
    from .job_table import Column, JobTable, slurm_text, status_text
    from .pgr_grid import PgrGrid, heat
    from .pgr_table import PgrTable

MODULES = {
    "AppFooter": "app_footer",
    "CurvePlot": "curve_plot",
    "thin": "curve_plot",
    "training_fraction": "curve_plot",
    "GpuPanel": "gpu_panel",
    "Column": "job_table",
    "JobTable": "job_table",
    "status_text": "job_table",
    "slurm_text": "job_table",
    "PgrGrid": "pgr_grid",
    "heat": "pgr_grid",
    "PgrTable": "pgr_table",
}

__all__ = [
    "AppFooter",
    "Column",
    "CurvePlot",
    "GpuPanel",
    "JobTable",
    "PgrGrid",
    "PgrTable",
    "heat",
    "slurm_text",
    "status_text",
    "thin",
    "training_fraction",
]


def __getattr__(name: str):
    if name in MODULES:
        return getattr(importlib.import_module(f".{MODULES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
