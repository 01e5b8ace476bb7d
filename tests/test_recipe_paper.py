"""Every shipped recipe (recipes/*.toml and the presets) validates and plans with `w2s run --dry-run`,
offline and without downloading: the paper's recipes need the Hub, so here they must plan, say that
their data is not downloaded yet, and exit 0."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import chess
import pytest

from w2s_core.assets import installed

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(
    p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("recipes/*.toml"), *ROOT.glob("recipes/presets/*.toml")]
)
NEEDS_ASSETS = {"recipes/demo.toml", "recipes/demo-finetune.toml", "recipes/demo-rm.toml"}  # packaged models
LOCAL_DATA = {"recipes/paper-chess.toml"}  # a file users download (see the recipe); tested below
PUZZLE_COLUMNS = "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags".split(",")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
PAPER = {
    "recipes/paper-nlp.toml": (192, ["sciq", "boolq", "cosmos_qa", "amazon_polarity"]),
    "recipes/paper-prompting.toml": (144, ["sciq", "boolq", "cosmos_qa", "amazon_polarity"]),
    "recipes/paper-rm.toml": (66, ["hh", "hh-generative"]),
    "recipes/smoke-paper.toml": (11, ["classify", "pairwise", "chess"]),
}


def test_the_paper_recipes_are_shipped():
    assert {*PAPER, *LOCAL_DATA, "recipes/demo-rm.toml"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in LOCAL_DATA])
def test_recipe_dry_runs_offline(tmp_path, w2s_cli, recipe):
    if recipe in NEEDS_ASSETS and not all(installed().values()):
        pytest.skip("the demo assets are not installed (`w2s assets install demo`)")
    done = w2s_cli(tmp_path / "res", "run", "--dry-run", recipe, env=OFFLINE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in done.stderr and not (tmp_path / "res").exists()  # a dry run writes nothing
    lines = out.splitlines()
    assert lines[0].startswith("recipe ") and "[to run]" in out
    checks = [line for line in lines if "data checks:" in line]
    assert checks and all("passed" in line or "not downloaded yet" in line for line in checks), checks
    if recipe in PAPER:
        n_jobs, tasks = PAPER[recipe]
        assert f": {n_jobs} jobs," in lines[0] and lines[0].endswith("tasks " + ", ".join(tasks))
        assert len(checks) == len(tasks)


def test_the_rm_recipe_stages_the_students_and_their_ceilings(tmp_path, w2s_cli):
    out = w2s_cli(tmp_path, "run", "--dry-run", "recipes/paper-rm.toml", env=OFFLINE, check=True).stdout
    staged = [line for line in out.splitlines() if "(from generative" in line]
    assert staged and all("hh-generative:" in line for line in staged)
    assert not any(" gpt2 seed=" in line for line in staged)  # the weak supervisor keeps its pre-trained weights
    assert "hh-generative: gt        gpt2-xl seed=2" in "\n".join(staged)


def write_puzzles(path: Path) -> int:
    """A Lichess-format CSV: every opening move then every legal reply (the reply is the 'solution')."""
    board = chess.Board()
    rows = []
    for first in sorted(board.legal_moves, key=chess.Move.uci):
        board.push(first)
        rows += [(chess.STARTING_FEN, f"{first.uci()} {reply.uci()}") for reply in board.legal_moves]
        board.pop()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PUZZLE_COLUMNS)
        for i, (fen, moves) in enumerate(rows):
            writer.writerow([f"t{i:05d}", fen, moves, 1500, 80, 90, 100, "opening", "", ""])
    return len(rows)


def test_chess_recipe_plans_with_its_puzzle_file(tmp_path, w2s_cli):
    text = (ROOT / "recipes/paper-chess.toml").read_text()
    sized = text.replace("n_train = 20000", "n_train = 200").replace("n_test = 10000", "n_test = 100")
    assert sized != text
    (tmp_path / "paper-chess.toml").write_text(sized)
    assert write_puzzles(tmp_path / "lichess_db_puzzle.csv") == 400
    done = w2s_cli(tmp_path / "res", "run", "--dry-run", str(tmp_path / "paper-chess.toml"), env=OFFLINE)
    assert done.returncode == 0, done.stderr
    # per seed: 4 GT jobs, 6 pairs x 2 methods, the chain's steps 2 and 3 (step 1 is the gpt2 -> gpt2-medium transfer)
    assert "paper-chess.toml): 54 jobs, seeds [0, 1, 2]" in done.stdout
    assert "data checks: passed (" in done.stdout
    assert "bootstrap gpt2-xl seed=2 trains on gpt2-large's labels of B with bootstrap-xent" in done.stdout


def test_chess_recipe_without_its_file_says_which_file(tmp_path, w2s_cli):
    shutil.copy(ROOT / "recipes/paper-chess.toml", tmp_path / "paper-chess.toml")
    done = w2s_cli(tmp_path / "res", "run", "--dry-run", str(tmp_path / "paper-chess.toml"), env=OFFLINE)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(tmp_path / "lichess_db_puzzle.csv") in done.stderr and "does not exist" in done.stderr
