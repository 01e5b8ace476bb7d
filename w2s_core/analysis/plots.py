"""The paper's figures as files: `w2s plot` and the TUI Results screen's figures key call `write_figures`.

One file per figure per format (png, svg, pdf), written atomically into one folder (by default
`RESULTS_DIR/figures/<recipe>/`, `figures_folder`). Per task, per grid point and per transfer
method: test accuracy and PGR against strong-model size, and the weak×strong PGR heatmap; per
bootstrap chain: the chain against direct transfer; per task and grid point with prompting rows:
prompting against finetuning; and, asked for by job hash, that job's training curves. A figure whose
data is absent is skipped, and the reason is added to the caller's `skipped` list (never an error).

A grid recipe gets a full figure set for every grid point (the point in the title and file name):
one point's figure is what the paper draws, and `w2s results --by KEY` is the view across points.

Same results, same bytes: the SVG hash salt is fixed, and no file carries a date (SVG `Date`, PDF
`CreationDate`); the PNG carries matplotlib's version only. What is drawn is built in
`plots_specs.py` from `plots_data.py`'s rows and sizes; `plots_draw.py` draws it. matplotlib is
imported only inside the functions that draw.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from w2s_core.analysis import plots_specs as specs
from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.plots_data import FigureSpec, chain_values, model_sizes, points, size_axis, slug, steps_of
from w2s_core.errors import InputError
from w2s_core.store import queries

if TYPE_CHECKING:
    from w2s_core.store import Store

__all__ = ["FORMATS", "figures_folder", "parse_formats", "write_figures", "write_job_curves"]

FORMATS = ("png", "svg", "pdf")
# savefig metadata per format: no dates, so the same results give the same bytes
METADATA: dict[str, dict] = {"png": {}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
RC = {"svg.hashsalt": "w2s", "svg.fonttype": "path", "font.family": "DejaVu Sans"}
DPI = 150
# rcParams are process-wide: two threads drawing at once (the TUI key pressed twice) would undo each
# other's rc_context, so drawing is one at a time
_DRAWING = threading.Lock()


def parse_formats(text: str) -> tuple[str, ...]:
    """`--format png,svg` as a tuple, in the given order; a name not in FORMATS is an InputError."""
    wanted = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise InputError(
            f"w2s plot --format: {', '.join(repr(b) for b in bad) or 'nothing'} given; expected a "
            f"comma-separated list of {', '.join(FORMATS)} (e.g. --format png,svg)"
        )
    return tuple(dict.fromkeys(wanted))


def figures_folder(results_dir: str | Path, recipe_name: str) -> Path:
    """Where a recipe's figures go by default: RESULTS_DIR/figures/<recipe name>/."""
    return Path(results_dir) / "figures" / slug(recipe_name)


def save(spec: FigureSpec, out_dir: Path, formats: tuple[str, ...] | list[str]) -> list[Path]:
    """Draw `spec` and write it once per format (temp file then rename: never half a file)."""
    import matplotlib

    from w2s_core.analysis.plots_draw import draw

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with _DRAWING, matplotlib.rc_context(RC):
        fig = draw(spec)
        for fmt in formats:
            path = out_dir / f"{spec.stem}.{fmt}"
            tmp = out_dir / f".{spec.stem}.{fmt}.tmp"
            fig.savefig(tmp, format=fmt, metadata=METADATA[fmt], dpi=DPI)
            os.replace(tmp, path)
            written.append(path)
    return written


def recipe_specs(store: Store, recipe_hash: str, metric: str, skipped: list[str]) -> list[FigureSpec]:
    """Every figure of a recipe's results (see the module doc), noting in `skipped` the kinds it has no data for."""
    rows = pgr_table(store, recipe_hash, metric)
    planned = queries.recipe_rows(store, recipe_hash)  # read once: the sizes and the chains' steps
    sizes, order = model_sizes(planned)
    axis = size_axis(order, sizes)
    chains = chain_values(planned, metric) if any(r["kind"] == "bootstrap" for r in rows) else []
    out: list[FigureSpec] = []
    for point in points(rows):
        for method in specs.methods(point.rows, "transfer"):
            out += [
                specs.accuracy_figure(point, method, axis, order, metric),
                specs.pgr_figure(point, method, axis, order),
                specs.heatmap_figure(point, method, order),
            ]
        for row in (r for r in point.rows if r["kind"] == "bootstrap"):
            steps = steps_of(chains, point, row["chain"], row["method"])
            out.append(specs.bootstrap_figure(point, row, steps, axis, metric))
        if any(r["kind"] == "prompt" for r in point.rows):
            out.append(specs.prompting_figure(point, axis, order, metric))
    kinds = {r["kind"] for r in rows}
    for kind, what in (
        ("transfer", "accuracy, PGR and heatmap figures: no finished transfer results"),
        ("bootstrap", "bootstrapping figure: the recipe has no finished bootstrap chain"),
        ("prompt", "prompting figure: the recipe has no finished prompting rows"),
    ):
        if kind not in kinds:
            skipped.append(what)
    return out


def find_job(store: Store, prefix: str) -> dict:
    """The one job whose hash starts with `prefix`, or an InputError saying how many matched."""
    matches = [j for j in store.jobs() if j["hash"].startswith(prefix.lower())]
    if len(matches) != 1:
        raise InputError(
            f"w2s plot --job {prefix!r} matches {len(matches)} jobs in {store.path}; give a longer job hash "
            "prefix (`w2s show RUN` lists a run's jobs)"
        )
    return matches[0]


def write_job_curves(
    store: Store,
    job: str,
    out_dir: Path,
    formats: tuple[str, ...] | list[str],
    metric: str = "acc",
    skipped: list[str] | None = None,
) -> list[Path]:
    """The training curves of the job whose hash starts with `job` (none, noted in `skipped`, if it logged nothing)."""
    found = find_job(store, job)
    spec = specs.curves_figure(store, found, metric)
    if spec is None:
        if skipped is not None:
            skipped.append(f"training curves: job {found['hash'][:12]} logged no metrics")
        return []
    return save(spec, Path(out_dir), formats)


def write_figures(
    store: Store,
    recipe_hash: str,
    out_dir: str | Path,
    formats: tuple[str, ...] | list[str],
    metric: str = "acc",
    job: str | None = None,
    skipped: list[str] | None = None,
) -> list[Path]:
    """Write the recipe's figures (and `job`'s training curves, given a hash prefix) into `out_dir`,
    one file per figure per format; the paths written, in order. Figures without data are skipped,
    each reason appended to `skipped` when given."""
    formats = parse_formats(",".join(formats))
    notes: list[str] = []
    written = [
        p for spec in recipe_specs(store, recipe_hash, metric, notes) for p in save(spec, Path(out_dir), formats)
    ]
    if job:
        written += write_job_curves(store, job, Path(out_dir), formats, metric, notes)
    if skipped is not None:
        skipped += notes
    return written
