"""How the paper's other settings are reported: chance levels beyond two classes, a generative stage's
progress line, suite tasks in the TUI's PGR grids, and a chess recipe that asks for an undefined figure."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from w2s_core.analysis import stats
from w2s_core.errors import InputError
from w2s_core.jobdir import Event, Result
from w2s_core.spec.recipe import load_recipe
from w2s_core.supervision.progress import _headline
from w2s_tui.widgets.pgr_grid import pgr_grids

CHESS = """
name = "chess-select"
[data]
name = "mate-in-one"
kind = "chess"
n_total = 50
n_train = 20
n_test = 10
[train]
val_size = 4
eval_every = 2
select = "{select}"
[[models]]
name = "a"
path = "tiny-random-gpt2"
tiny = {{ tokenizer = "chars" }}
[[models]]
name = "b"
path = "tiny-random-gpt2"
tiny = {{ tokenizer = "chars", hidden_size = 64 }}
"""


def test_chance_warning_uses_the_tasks_chance_level():
    # ~30 legal moves a position: 0.03-0.04 is chance there, while for a two-way task it is far below 0.5
    chess = stats.warnings_for(0.033, 0.035, 0.034, n_test=400, chance=1 / 30)
    assert any("at chance" in w and "0.0333" in w for w in chess)
    assert not any("at chance" in w for w in stats.warnings_for(0.033, 0.035, 0.034, n_test=400))
    # two-way results recorded without a chance level keep the old 0.5 check
    assert any("at chance" in w for w in stats.warnings_for(0.50, 0.51, 0.505, n_test=400))


def test_generative_stage_progress_line_reports_its_lm_loss():
    assert _headline({Result.LM_LOSS: 2.5, Result.INITIAL_LM_LOSS: 4.0}) == "LM loss 2.500 (from 4.000)"
    assert _headline({Event.TEST_ACC: 0.75}) == "test acc 0.750"


def _row(task: str, kind: str, weak: str, strong: str, method: str, pgr: float) -> dict:
    return {"task": task, "kind": kind, "weak": weak, "strong": strong, "method": method, "pgr": pgr}


def test_suite_grids_keep_tasks_apart_and_show_prompting():
    rows = [
        _row("classify", "transfer", "small", "large", "xent", 0.5),
        _row("pairwise", "transfer", "small", "large", "xent", -0.25),
        _row("classify", "prompt", "small", "large", "0-shot", 0.1),
    ]
    grids = pgr_grids(rows)
    console = Console(width=100, record=True)
    titles = []
    for grid in grids:
        console.print(grid)
        titles.append(str(grid.title))
    assert titles == [
        "PGR grid · classify · xent",
        "PGR grid · pairwise · xent",
        "PGR grid · classify · prompting 0-shot",
    ]
    text = console.export_text()
    assert "0.50" in text and "-0.25" in text and "0.10" in text  # same model names, one cell each


@pytest.mark.parametrize("select,ok", [("val_auroc", False), ("val_loss", True)])
def test_chess_cannot_select_by_auroc(tmp_path: Path, select: str, ok: bool):
    path = tmp_path / "chess.toml"
    path.write_text(CHESS.format(select=select))
    if ok:
        assert load_recipe(path).data["kind"] == "chess"
        return
    with pytest.raises(InputError) as err:
        load_recipe(path)
    assert "train.select" in str(err.value) and "AUROC is undefined" in str(err.value)
