"""`mate-in-one`: an offline chess task of positions whose side to move mates in exactly one way.

Positions come from seeded random legal play with python-chess from the initial position: after
each move from ply MIN_PLY on, every legal move that could give check is tried and kept when
`board.is_checkmate()` holds after it. A position is kept when exactly one move mates: the label is
one move, and with two mating moves the other mate would count as wrong although it is as good (the
Lichess puzzle set likewise keeps only puzzles with a single winning move). The game then ends, so
positions are independent; repeated positions are kept once. Random moves are chosen from the legal
moves sorted by (from, to, promotion), so the pools do not depend on python-chess's move order.

The train pool and the test pool (n_total positions each) come from different seeds, and the train
pool leaves out any position of the test pool. A row is `puzzles.puzzle_row` of the puzzle (FEN
before the opponent's last random move, "that_move mating_move"), exactly what the same puzzle reads
as from a Lichess-format CSV (`write_puzzle_csv`). Generating takes about 10-40 ms per position on
one core, so pools are cached under the w2s cache by n_total and VERSION.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import chess

from w2s_core.data.puzzles import puzzle_row, write_puzzle_csv
from w2s_core.data.types import Example, Pool
from w2s_core.errors import InputError
from w2s_core.paths import cache_dir, locked

VERSION = 1  # bump when the generator's output changes: it is part of the dataset fingerprint and cache key
MIN_PLY = 8  # no positions from the first moves, where random games repeat each other most
MAX_PLY = 300
Puzzle = tuple[str, str, str]  # (FEN before the opponent's move, the opponent's move, the mating move)


def _order(move: chess.Move) -> tuple[int, int, int]:
    return move.from_square, move.to_square, move.promotion or 0


def _check_squares(board: chess.Board, king: int) -> dict[int, int]:
    """Per piece type of the side to move, the squares from which it would attack the enemy `king`
    (with today's occupancy: a non-promoting piece moves along the line it then attacks on, so
    the square it leaves cannot open that line; promotions are always tried)."""
    occupied = board.occupied
    diagonal = chess.BB_DIAG_ATTACKS[king][chess.BB_DIAG_MASKS[king] & occupied]
    straight = (
        chess.BB_RANK_ATTACKS[king][chess.BB_RANK_MASKS[king] & occupied]
        | chess.BB_FILE_ATTACKS[king][chess.BB_FILE_MASKS[king] & occupied]
    )
    return {
        chess.PAWN: chess.BB_PAWN_ATTACKS[not board.turn][king],
        chess.KNIGHT: chess.BB_KNIGHT_ATTACKS[king],
        chess.BISHOP: diagonal,
        chess.ROOK: straight,
        chess.QUEEN: diagonal | straight,
        chess.KING: 0,
    }


def _discoverers(board: chess.Board, king: int) -> int:
    """Squares of the mover's pieces that alone stand between one of its sliders and the enemy king:
    moving one of them may uncover a check."""
    ours = board.occupied_co[board.turn]
    straight, diagonal = board.rooks | board.queens, board.bishops | board.queens
    snipers = ours & (
        ((chess.BB_RANK_ATTACKS[king][0] | chess.BB_FILE_ATTACKS[king][0]) & straight)
        | (chess.BB_DIAG_ATTACKS[king][0] & diagonal)
    )
    out = 0
    for sniper in chess.scan_reversed(snipers):
        between = chess.between(king, sniper) & board.occupied
        if chess.popcount(between) == 1 and between & ours:
            out |= between
    return out


def mating_moves(board: chess.Board, legal: list[chess.Move]) -> list[chess.Move]:
    """The moves of `legal` after which the opponent is checkmated. Only moves that can give check
    are pushed (a mate is a check): a direct check from the target square, a discovered one, and
    every promotion, castling and en-passant capture."""
    king = board.king(not board.turn)
    if king is None:
        return []
    reach, uncover = _check_squares(board, king), _discoverers(board, king)
    out = []
    for move in legal:
        piece = board.piece_type_at(move.from_square)
        may_check = (
            reach[piece] & chess.BB_SQUARES[move.to_square]  # type: ignore[index]
            or uncover & chess.BB_SQUARES[move.from_square]
            or move.promotion
            or board.is_castling(move)
            or board.is_en_passant(move)
        )
        if may_check:
            board.push(move)
            if board.is_checkmate():
                out.append(move)
            board.pop()
    return out


def _game(rng: random.Random) -> Puzzle | None:
    """One random game, until its first position with exactly one mating move (None if it ends first)."""
    board = chess.Board()
    legal = sorted(board.legal_moves, key=_order)
    for ply in range(MAX_PLY):
        move = rng.choice(legal)
        board.push(move)
        legal = sorted(board.legal_moves, key=_order)
        if not legal or board.is_insufficient_material() or board.halfmove_clock >= 100:
            return None
        if ply + 1 >= MIN_PLY:
            mates = mating_moves(board, legal)
            if len(mates) == 1:
                board.pop()  # the FEN before the opponent's move, as Lichess gives it
                return board.fen(), move.uci(), mates[0].uci()
    return None


def generate(seed: str, n: int, exclude: frozenset[str] = frozenset()) -> list[Puzzle]:
    """n mate-in-one puzzles from random games seeded by `seed`, none at a position (EPD) in `exclude`."""
    rng, seen, out = random.Random(f"w2s/mate-in-one/{seed}"), set(exclude), []
    while len(out) < n:
        puzzle = _game(rng)
        if puzzle is None:
            continue
        board = chess.Board(puzzle[0])
        board.push_uci(puzzle[1])
        if board.epd() not in seen:
            seen.add(board.epd())
            out.append(puzzle)
    return out


def position_key(puzzle: Puzzle) -> str:
    board = chess.Board(puzzle[0])
    board.push_uci(puzzle[1])
    return board.epd()


def _n_total(cfg: dict) -> int:
    n_total = cfg.get("n_total", 2000)
    if not isinstance(n_total, int) or n_total < 1:
        raise InputError(f"mate-in-one dataset: n_total must be a positive integer, got {n_total!r}.")
    return n_total


def puzzles(n_total: int) -> dict[str, list[Puzzle]]:
    """The "train" and "test" puzzles, from the cache or generated once (under a lock, so parallel jobs wait)."""
    path = Path(cache_dir()) / "mate-in-one" / f"n{n_total}-v{VERSION}.json"
    with locked(path.with_suffix(".lock")):
        if path.is_file():
            cached = json.loads(path.read_text())
            return {k: [tuple(p) for p in v] for k, v in cached.items()}  # type: ignore[misc]
        test = generate("test", n_total)
        train = generate("train", n_total, frozenset(position_key(p) for p in test))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"train": train, "test": test}))
        os.replace(tmp, path)
    return {"train": train, "test": test}


def load(cfg: dict) -> tuple[Pool, Pool | None]:
    generated = puzzles(_n_total(cfg))
    rows: list[list[Example]] = [[puzzle_row(p[0], f"{p[1]} {p[2]}") for p in generated[k]] for k in ("train", "test")]
    return rows[0], rows[1]


def write_csv(path: Path, n: int, seed: str = "fixture") -> int:
    """n generated mate-in-one puzzles as a Lichess-format CSV (FEN before the opponent's move,
    Moves = "opponent_move mating_move"): generated data in the format of a real puzzle file."""
    return write_puzzle_csv(path, generate(seed, n), prefix="gen")


def identity(cfg: dict) -> dict:
    return {"n_total": _n_total(cfg), "min_ply": MIN_PLY, "version": VERSION}
