"""Issue 13's figures and LaTeX: `w2s plot` (PNG/SVG/PDF files, one per figure), `w2s results --latex`,
and the Results screen's figures key.

Files are checked as files (PNG magic bytes and a decodable image, SVG that parses with an <svg>
root) and by what they draw: every line is an SVG group `line-...` and every heatmap cell a group
`cell-...`, counted against the PGR rows they come from. The filled database (conftest) gives fixed
shapes with two seeds; a module-scoped run of tiny models through the CLI, shaped as the embedded
default (probes, two models, xent and logconf, several seeds), gives real results with parameter
counts; the embedded default itself runs in the opt-in slow test.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import RECIPE, RECIPE_HASH, ROOT, run_w2s

from w2s_core.analysis import plots
from w2s_core.analysis.latex import latex_table
from w2s_core.analysis.pgr import pgr_summary, pgr_table
from w2s_core.analysis.plots_data import ChainStep, Point, model_sizes, size_axis, steps_of
from w2s_core.errors import InputError
from w2s_core.jobdir import Result
from w2s_core.store import Store, queries

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def groups(svg: Path, prefix: str) -> list[str]:
    """The ids of the SVG's groups starting with `prefix` ("line-", "cell-"), in document order."""
    root = ET.parse(svg).getroot()
    return [g.get("id") for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)]


def check_image_files(paths: list[Path]) -> None:
    """Each PNG has the magic bytes and decodes to a non-empty image; each SVG parses with an <svg> root."""
    from PIL import Image

    assert paths
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
            with Image.open(path) as image:
                image.load()
                assert image.width > 100 and image.height > 100
        elif path.suffix == ".svg":
            assert ET.parse(path).getroot().tag == f"{SVG}svg"


def write(root: Path, out: Path, formats=("png", "svg"), **kwargs) -> tuple[list[Path], list[str]]:
    skipped: list[str] = []
    with Store.open(root, readonly=True) as store:
        paths = plots.write_figures(store, RECIPE_HASH, out, formats, skipped=skipped, **kwargs)
    return paths, skipped


def transfer_rows(root: Path, method: str) -> list[dict]:
    with Store.open(root, readonly=True) as store:
        return [r for r in pgr_table(store, RECIPE_HASH) if r["kind"] == "transfer" and r["method"] == method]


# --- figures on the filled database ----------------------------------------------------------------


def test_each_figure_draws_a_line_per_weak_model_and_a_cell_per_pair(filled_results, tmp_path):
    paths, skipped = write(filled_results.root, tmp_path / "figs")
    check_image_files(paths)
    names = {p.name for p in paths}
    for method in filled_results.methods:
        rows = transfer_rows(filled_results.root, method)
        weak = sorted({r["weak"] for r in rows})
        accuracy = tmp_path / "figs" / f"accuracy-synthetic-{method}.svg"
        assert sorted(groups(accuracy, "line-")) == sorted([*(f"line-weak-{w}" for w in weak), "line-ceiling"])
        assert sorted(groups(tmp_path / "figs" / f"pgr-synthetic-{method}.svg", "line-")) == [
            f"line-weak-{w}" for w in weak
        ]
        cells = groups(tmp_path / "figs" / f"heatmap-synthetic-{method}.svg", "cell-")
        assert sorted(cells) == sorted(f"cell-{r['weak']}__{r['strong']}" for r in rows)
        assert {
            f"{kind}-synthetic-{method}.{fmt}" for kind in ("accuracy", "pgr", "heatmap") for fmt in ("png", "svg")
        } <= names
    # the chain against direct transfer with each method, and the ceiling
    boot = groups(tmp_path / "figs" / "bootstrap-synthetic-boot-xent.svg", "line-")
    assert sorted(boot) == sorted(
        ["line-bootstrap", "line-ceiling", *(f"line-direct-{m}" for m in filled_results.methods)]
    )
    assert len(paths) == 2 * (3 * len(filled_results.methods) + 1)  # no prompting rows: that figure is skipped
    assert skipped == ["prompting figure: the recipe has no finished prompting rows"]


def test_the_same_results_give_the_same_bytes(filled_results, tmp_path):
    first, _ = write(filled_results.root, tmp_path / "a", ("png", "svg", "pdf"))
    second, _ = write(filled_results.root, tmp_path / "b", ("png", "svg", "pdf"))
    assert [p.name for p in first] == [p.name for p in second]
    assert {p.suffix for p in first} == {".png", ".svg", ".pdf"}
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in first if p.suffix == ".pdf")
    # a different result draws a different picture (the comparison above can fail)
    with Store.open(filled_results.root) as store:
        store.set_results(filled_results.hashes["m-small to m-big xent s0"], {"test_acc": 0.61})
    third, _ = write(filled_results.root, tmp_path / "c", ("svg",))
    changed = [p.name for p in third if p.read_bytes() != (tmp_path / "a" / p.name).read_bytes()]
    assert "accuracy-synthetic-xent.svg" in changed and "accuracy-synthetic-logconf.svg" not in changed


def test_training_curves_of_one_job(filled_results, tmp_path):
    job = filled_results.hashes["m-small to m-big xent s0"]
    paths, _ = write(filled_results.root, tmp_path, ("svg",), job=job[:10])
    curves = tmp_path / f"curves-{job[:12]}.svg"
    assert curves in paths
    # the filled jobs log loss, train_acc (agreement with the weak labels) and test_acc; no α, no validation
    assert sorted(groups(curves, "line-")) == ["line-loss", "line-test_acc", "line-train_acc"]
    with Store.open(filled_results.root, readonly=True) as store:
        with pytest.raises(InputError, match="matches 0 jobs"):
            plots.write_job_curves(store, "ffffffff", tmp_path, ("svg",))


def test_sizes_give_a_log_axis_and_their_absence_the_recipe_order(filled_results):
    with Store.open(filled_results.root) as store:
        sizes, order = model_sizes(queries.recipe_rows(store, RECIPE_HASH))
        assert sizes == {} and order == list(filled_results.models)
        axis = size_axis(order, sizes)
        assert not axis.log and "recipe order" in axis.label and axis.positions["m-big"] == 2.0
        for i, model in enumerate(filled_results.models):  # one GT job per model records its size
            store.set_results(filled_results.hashes[f"gt {model} s0"], {Result.N_PARAMS: 10 ** (6 + i)})
        sizes, order = model_sizes(queries.recipe_rows(store, RECIPE_HASH))
    axis = size_axis(order, sizes)
    assert axis.log and "parameters" in axis.label and axis.positions == {"m-small": 1e6, "m-mid": 1e7, "m-big": 1e8}
    assert [t for _, t in axis.ticks] == ["m-small\n1M", "m-mid\n10M", "m-big\n100M"]
    partial = size_axis(order, {"m-small": 1e6})
    assert not partial.log and "no parameter count for m-mid, m-big" in partial.label


def with_extra_rows(monkeypatch, extra) -> None:
    """pgr_table as `write_figures` sees it: the real rows, changed by `extra(rows) -> rows`."""
    real = plots.pgr_table
    monkeypatch.setattr(plots, "pgr_table", lambda store, h, metric="acc": extra(real(store, h, metric)))


def test_a_grid_point_gets_its_own_figure_set(filled_results, tmp_path, monkeypatch):
    points = [{"lr": 1e-05, "alpha": 0.5}, {"lr": 5e-05, "alpha": 0.5}]
    with_extra_rows(monkeypatch, lambda rows: [{**r, "grid": g} for g in points for r in rows])
    paths, _ = write(filled_results.root, tmp_path, ("svg",))
    for point in ("lr-1e-05_alpha-0.5", "lr-5e-05_alpha-0.5"):
        for method in filled_results.methods:
            assert tmp_path / f"heatmap-synthetic-{method}-{point}.svg" in paths
        assert tmp_path / f"bootstrap-synthetic-boot-xent-{point}.svg" in paths
    assert len(paths) == 2 * (3 * len(filled_results.methods) + 1)


def test_a_chain_shared_by_grid_points_counts_each_job_once():
    # an xent chain under an alpha sweep: the same jobs serve both alphas, and its row names only lr
    found = [
        ChainStep("t", {"lr": 1e-05, "alpha": alpha}, ("a", "b"), "boot", 1, f"job{seed}", 0.6 + seed / 10)
        for alpha in (0.5, 0.75)
        for seed in (0, 1)
    ]
    found.append(ChainStep("t", {"lr": 5e-05, "alpha": 0.5}, ("a", "b"), "boot", 1, "other", 0.9))
    point = Point("t", {"lr": 1e-05}, [])
    assert steps_of(found, point, ["a", "b"], "boot") == {1: [0.6, 0.7]}
    assert steps_of(found, Point("t", {"lr": 5e-05, "alpha": 0.5}, []), ["a", "b"], "boot") == {1: [0.9]}
    assert steps_of(found, Point("other task", {"lr": 1e-05}, []), ["a", "b"], "boot") == {}


def test_prompting_against_finetuning(filled_results, tmp_path, monkeypatch):
    def prompts(rows):  # each model prompted 0- and 5-shot, as the [[prompt]] table's rows read
        strong = {r["strong"]: r for r in rows if r["kind"] == "transfer"}
        return rows + [
            {**r, "kind": "prompt", "method": f"{k}-shot", "chain": None} for k in (0, 5) for r in strong.values()
        ]

    with_extra_rows(monkeypatch, prompts)
    paths, skipped = write(filled_results.root, tmp_path, ("svg",))
    assert sorted(groups(tmp_path / "prompting-synthetic.svg", "line-")) == [
        "line-finetuned",
        "line-prompt-0-shot",
        "line-prompt-5-shot",
    ]
    assert skipped == []


# --- the command line -------------------------------------------------------------------------------


def test_w2s_plot_prints_each_path_and_refuses_a_bad_format(filled_results):
    out = run_w2s(filled_results.root, "plot", RECIPE, "--format", "svg,png")
    assert out.returncode == 0, out.stderr
    printed = [Path(line) for line in out.stdout.splitlines()]
    assert printed and all(p.parent == filled_results.root / "figures" / RECIPE for p in printed)
    check_image_files(printed)
    assert "skipped prompting figure" in out.stderr
    bad = run_w2s(filled_results.root, "plot", "--format", "png,jpg")
    assert bad.returncode == 2 and "'jpg'" in bad.stderr and "png, svg, pdf" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- LaTeX --------------------------------------------------------------------------------------------


def check_latex(text: str) -> int:
    """Parse the table: balanced braces, booktabs rules, every row with as many cells as its tabular
    has columns; the number of tabulars."""
    body = re.sub(r"\\[{}&%_#$]", "", text)  # escaped characters are not structure
    body = "\n".join(line.split("%")[0] for line in body.splitlines())  # comments
    depth = 0
    for c in body:
        depth += {"{": 1, "}": -1}.get(c, 0)
        assert depth >= 0
    assert depth == 0
    tabulars = re.findall(r"\\begin\{tabular\}\{([^}]*)\}(.*?)\\end\{tabular\}", body, re.S)
    assert tabulars
    for spec, inside in tabulars:
        columns = len(re.findall(r"[lcr]", spec))
        rows = [ln for ln in inside.splitlines() if ln.strip().endswith("\\\\")]
        assert rows
        assert all(row.count("&") + 1 == columns for row in rows), (spec, rows)
        assert inside.index(r"\toprule") < inside.index(r"\midrule") < inside.index(r"\bottomrule")
    return len(tabulars)


def test_results_latex_is_a_booktabs_table(filled_results, tmp_path):
    out = run_w2s(filled_results.root, "results", "--latex")
    assert out.returncode == 0, out.stderr
    assert check_latex(out.stdout) == 2  # the rows, then the per-method medians
    with Store.open(filled_results.root, readonly=True) as store:
        rows = pgr_table(store, RECIPE_HASH)
    first = rows[0]
    assert f"{first['pgr_mean']:.2f} & [{first['pgr_lo']:.2f}, {first['pgr_hi']:.2f}]" in out.stdout
    # names with LaTeX's special characters come out escaped
    odd = [{**r, "weak": "w_1 & 50% #2", "recipe": "my_recipe"} for r in rows]
    text = latex_table(odd, [])
    assert r"w\_1 \& 50\% \#2" in text and r"my\_recipe" in text
    assert check_latex(text) == 1


def test_results_latex_compiles_with_pdflatex(filled_results, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed: the LaTeX table is parsed (test above), not compiled")
    out = run_w2s(filled_results.root, "results", "--latex")
    doc = tmp_path / "table.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + out.stdout + "\\end{document}\n"
    )
    made = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout[-2000:]


def test_latex_of_grid_rows_and_summaries_keeps_its_columns(filled_results):
    with Store.open(filled_results.root, readonly=True) as store:
        rows, summary = pgr_table(store, RECIPE_HASH), pgr_summary(store, RECIPE_HASH)
    gridded = [{**r, "grid": {"lr": lr}} for lr in (1e-5, 5e-5) for r in rows]
    text = latex_table(gridded, summary)
    assert check_latex(text) == 2 and "grid point" in text and "lr=1e-05" in text
    assert latex_table([], []).startswith("%")


# --- the TUI --------------------------------------------------------------------------------------------


def test_results_screen_key_writes_the_figures_and_names_the_folder(filled_results, settle):
    from w2s_tui.app import W2SApp

    folder = filled_results.root / "figures" / RECIPE

    async def body():
        app = W2SApp(filled_results.root, start="results")
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            toasts = [n.message for n in app._notifications]
            assert any(str(folder) in t and t.startswith("Wrote") for t in toasts), toasts
            assert any(b.id == "results.plot" for b in app.screen.BINDINGS)

    asyncio.run(body())
    written = sorted(folder.iterdir())
    check_image_files(written)
    assert {p.suffix for p in written} == {".png", ".svg"}


# --- real results: tiny models through the CLI, shaped as the embedded default -----------------------

DEMO_SHAPED = """
name = "demo-tiny"
seeds = [0, 1]
[data]
name = "synthetic"
n_train = 160
n_test = 80
seed = 0
train_pool = "fixed"
[train]
mode = "probe"
epochs = 2
lr = 0.01
batch_size = 16
minibatch_size = 16
max_length = 16
eval_every = 5
[[models]]
name = "weak-gpt2"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1 }
[[models]]
name = "strong-bert"
path = "tiny-random-bert"
[[transfer]]
loss = "xent"
[[transfer]]
loss = "logconf"
alpha = 0.5
warmup_frac = 0.2
[launch]
parallel = 2
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, w2s_cache):
    recipe = tmp_path_factory.mktemp("recipe") / "demo-tiny.toml"
    recipe.write_text(DEMO_SHAPED)
    results = tmp_path_factory.mktemp("results")
    run = run_w2s(results, "run", str(recipe))
    assert run.returncode == 0, run.stdout + run.stderr
    return results


def test_real_results_record_sizes_and_plot_on_them(tiny_run, tmp_path):
    with Store.open(tiny_run, readonly=True) as store:
        (recipe,) = store.recipes()
        planned = queries.recipe_rows(store, recipe["hash"])
        sizes, order = model_sizes(planned)
        rows = pgr_table(store, recipe["hash"])
        job = next(j for j in planned if j["role"]["role"] == "transfer" and j["role"]["method"] == "logconf")
    # probes: the frozen backbone plus a linear head; the bert is the bigger model
    assert order == ["weak-gpt2", "strong-bert"] and 0 < sizes["weak-gpt2"] < sizes["strong-bert"]
    out = run_w2s(tiny_run, "plot", "--job", job["job_hash"][:12], "--format", "png,svg")
    assert out.returncode == 0, out.stderr
    paths = [Path(line) for line in out.stdout.splitlines()]
    check_image_files(paths)
    folder = tiny_run / "figures" / "demo-tiny"
    for method in ("xent", "logconf"):
        weak = {r["weak"] for r in rows if r["method"] == method}
        assert len(groups(folder / f"accuracy-synthetic-{method}.svg", "line-")) == len(weak) + 1
        assert len(groups(folder / f"heatmap-synthetic-{method}.svg", "cell-")) == sum(
            r["method"] == method for r in rows
        )
    curves = groups(folder / f"curves-{job['job_hash'][:12]}.svg", "line-")
    assert {"line-loss", "line-alpha", "line-test_acc", "line-train_acc"} <= set(curves)  # logconf logs α


@pytest.mark.slow
def test_w2s_plot_on_the_embedded_default(tmp_path):
    from w2s_core import assets

    missing = [name for name, ok in assets.installed().items() if not ok]
    if missing:
        pytest.skip(f"demo assets missing ({', '.join(missing)}): run `w2s assets install demo`")
    run = run_w2s(tmp_path, "run")  # no recipe: the embedded default, recipes/demo.toml
    assert run.returncode == 0, run.stdout + run.stderr
    out = run_w2s(tmp_path, "plot", "--format", "png,svg")
    assert out.returncode == 0, out.stderr
    paths = [Path(line) for line in out.stdout.splitlines()]
    check_image_files(paths)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    folder = tmp_path / "figures" / "demo"
    for method in ("xent", "logconf"):  # one weak model (MiniLM) and the ceiling; one pair
        assert sorted(groups(folder / f"accuracy-movie-snippets-{method}.svg", "line-")) == [
            "line-ceiling",
            "line-weak-minilm-l6",
        ]
        assert groups(folder / f"heatmap-movie-snippets-{method}.svg", "cell-") == ["cell-minilm-l6__mpnet-base"]
    assert (ROOT / "recipes" / "demo.toml").is_file()
