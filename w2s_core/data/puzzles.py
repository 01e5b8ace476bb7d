"""Chess puzzles (`[data] kind = "chess"`): the Lichess puzzle CSV, the prompt of a position, and a writer.

Lichess's public puzzle file has the columns PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,
NbPlays,Themes,GameUrl,OpeningTags. Its FEN is the position *before* the opponent's move that starts
`Moves`; the puzzle is the position after that move, and its answer is the second move of `Moves`
(the first move of the solution, which is what the paper asks the model for). A pool row is
(chess_prompt(FEN after the opponent's move, [that move]), label, choices): choices are every legal
move of the position in UCI, sorted, and label the index of the solution's first move. The paper's
own chess preprocessing was never released (openai/weak-to-strong#10); it showed the game so far,
of which the Lichess file keeps only the opponent's last move, so that is the move list given here.

Rows are parsed when a split draws them (the full Lichess file has millions; parsing them all with
python-chess would take minutes in every job), so a bad row fails the run's preflight when drawn:
an InputError naming the file, the line, the PuzzleId and the bad value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import chess

from w2s_core.data.local import require_file
from w2s_core.data.types import Example
from w2s_core.errors import InputError

LICHESS_COLUMNS = (
    "PuzzleId", "FEN", "Moves", "Rating", "RatingDeviation", "Popularity", "NbPlays", "Themes", "GameUrl",
    "OpeningTags",
)  # fmt: skip
REQUIRED = ("PuzzleId", "FEN", "Moves")


def chess_prompt(fen: str, moves: Sequence[str]) -> str:
    """The plain-text prompt of a position: its FEN, the moves that led to it where given (UCI,
    space-separated), and "Best move:", which a move choice continues as " " + uci."""
    lines = [f"FEN: {fen}"]
    if moves:
        lines.append("Moves: " + " ".join(moves))
    lines.append("Best move:")
    return "\n".join(lines)


def legal_ucis(board: chess.Board) -> tuple[str, ...]:
    """Every legal move of the position in UCI, sorted: the choices of a chess example."""
    return tuple(sorted(move.uci() for move in board.legal_moves))


def _legal(board: chess.Board, uci: str) -> chess.Move | None:
    try:
        move = chess.Move.from_uci(uci)
    except ValueError:  # not UCI at all
        return None
    return move if board.is_legal(move) else None


def puzzle_row(fen: str, moves: str, where: str = "") -> Example:
    """The example of one Lichess-format puzzle (FEN before the opponent's move; Moves starting with
    that move, then the solution). `where` names the file, line and PuzzleId for errors."""
    at = f"{where}: " if where else ""
    try:
        board = chess.Board(fen)
    except ValueError as exc:
        raise InputError(f"{at}FEN {fen!r} is not a valid position ({exc}).") from exc
    if not board.is_valid():
        raise InputError(f"{at}FEN {fen!r} is not a legal position ({board.status()!r}).")
    ucis = moves.split()
    if len(ucis) < 2:
        raise InputError(
            f"{at}Moves {moves!r} has {len(ucis)} move(s); a puzzle needs the opponent's move and at least "
            "one solution move."
        )
    first = _legal(board, ucis[0])
    if first is None:
        raise InputError(f"{at}move {ucis[0]!r} (the opponent's move, first of Moves) is not legal in FEN {fen!r}.")
    board.push(first)
    answer = _legal(board, ucis[1])
    if answer is None:
        raise InputError(
            f"{at}move {ucis[1]!r} (the solution's first move, second of Moves) is not legal after {ucis[0]} "
            f"in FEN {fen!r}."
        )
    choices = legal_ucis(board)
    return chess_prompt(board.fen(), [ucis[0]]), choices.index(answer.uci()), choices


class PuzzleRows(Sequence):
    """The puzzles of a Lichess-format CSV, parsed into examples when indexed."""

    def __init__(self, path: Path, rows: list[tuple[int, str, str, str]]):
        self._path, self._rows = path, rows  # (line, PuzzleId, FEN, Moves)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        line, puzzle_id, fen, moves = self._rows[int(i)]
        return puzzle_row(fen, moves, f"Puzzle file {self._path}, line {line} (PuzzleId {puzzle_id!r})")


def load_puzzles(cfg: dict) -> PuzzleRows:
    """The recipe's puzzle file (`[data] path`, a Lichess-format .csv) as a lazily parsed pool."""
    path = Path(cfg["path"])
    if path.suffix.lower() != ".csv":
        raise InputError(
            f'Data file {path}: chess data (kind = "chess") must be a Lichess puzzle CSV (.csv, with columns '
            f"{', '.join(REQUIRED)}); decompress lichess_db_puzzle.csv.zst first."
        )
    require_file(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        names = list(reader.fieldnames or [])
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise InputError(
                f"Data file {path} is not a Lichess puzzle CSV: it lacks the column(s) {', '.join(missing)} "
                f'(kind = "chess" needs {", ".join(REQUIRED)}); its columns are: {", ".join(names) or "(none)"}.'
            )
        rows = [(reader.line_num, r["PuzzleId"] or "", r["FEN"] or "", r["Moves"] or "") for r in reader]
    return PuzzleRows(path, rows)


def write_puzzle_csv(
    path: Path, puzzles: Iterable[tuple[str, str, str]], prefix: str = "gen", themes: str = "mateIn1 oneMove"
) -> int:
    """Write (FEN before the opponent's move, the opponent's move, the solution's move) triples as a
    Lichess-format CSV (PuzzleId = prefix + a number; Themes = `themes`; the columns w2s does not read
    left blank). Returns the number of rows written."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LICHESS_COLUMNS)
        for n, (fen, opponent, answer) in enumerate(puzzles, 1):
            writer.writerow([f"{prefix}{n:05d}", fen, f"{opponent} {answer}", "", "", "", "", themes, "", ""])
    return n
