"""The Results screen's figures key (`results.plot`, p): the shown recipe's figures as files, off the UI thread.

The same `w2s_core.analysis.plots.write_figures` as `w2s plot`, into the same default folder
(RESULTS_DIR/figures/<recipe>/), PNG and SVG; drawing takes seconds, so it runs in a thread worker
(`workers.read_in_thread`) and says where the files went in a toast (a `Notice`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from textual.message import Message

from w2s_core.store import Store

from .messages import Notice

FORMATS = ("png", "svg")


def figures_reader(
    reading: Callable[[], AbstractContextManager[Store | None]], recipe: dict, results_dir: Path, metric: str
) -> Callable[[], Iterator[Message]]:
    """A worker body writing `recipe`'s figures in `metric`; it yields the toast that names the folder."""

    def write() -> Iterator[Message]:
        from w2s_core.analysis.plots import figures_folder, write_figures  # numpy, matplotlib: off the UI thread

        folder = figures_folder(results_dir, recipe["name"])
        try:
            with reading() as store:
                if store is None:
                    yield Notice("No results database yet: nothing to plot.", "warning")
                    return
                paths = write_figures(store, recipe["hash"], folder, FORMATS, metric)
        except (ValueError, RuntimeError) as exc:  # matplotlib's own errors: a toast, not a crashed app
            yield Notice(f"figures failed: {type(exc).__name__}: {exc}", "error")
            return
        if not paths:
            yield Notice(f"No figures for {recipe['name']}: no finished results to draw yet.", "warning")
            return
        figures = len({p.stem for p in paths})
        yield Notice(f"Wrote {figures} figures ({', '.join(FORMATS)}) to {folder}")

    return write
