"""Deterministic A/B/test splits (and the validation rows of a training half): the only way a trainer gets its data.

Every trainer process rebuilds its data from (cfg, seed) with `make_splits`, so splits must be a pure
function of those: all randomness comes from generators seeded by sha256 of explicit strings.

A row is usable when it has something to read: classify rows need non-blank text; pairwise rows two
non-blank, different replies (their prompt may be empty); chess rows always are. `balance = true`
draws n // K of each of the K classes, the remainder going one each to the lowest classes; binary
data keeps its old rule (A and test give an odd one to class 1, B to class 0), so existing splits
are unchanged. Chess has no classes to balance (its labels index each position's own legal moves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from w2s_core.data.registry import load_pools, source
from w2s_core.data.types import Example, Pool, Split
from w2s_core.errors import InputError

# what a usable row is, per kind, for the error that says how many there are
USABLE = {
    "classify": "examples with non-blank text",
    "pairwise": "pairs with two different, non-blank replies",
    "chess": "positions",
}
N_TOTAL_DATASETS = ("synthetic", "synthetic-pairs", "movie-pairs", "mate-in-one")  # their size is n_total


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from explicit parts via sha256: identical in every process and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def usable(row: Example) -> bool:
    """Whether a row can be drawn (see the module docstring)."""
    if len(row) > 2:
        choices = row[2]  # type: ignore[misc]
        return all(c.strip() for c in choices) and len(set(choices)) == len(choices)
    return bool(row[0].strip())


@dataclass(frozen=True)
class _Data:
    """What a draw needs to know of the data besides its pools."""

    name: str  # for errors: the registry name or the file's path
    kind: str
    n_classes: int
    balance: bool


def _quota(n: int, n_classes: int, extra: int) -> dict[int, int]:
    """How many of each class a balanced draw of n takes: n // K each, the remainder one each from
    class `extra` on for binary data (the old rule), from class 0 on for K > 2."""
    first = extra if n_classes == 2 else 0
    return {c: n // n_classes + int((c - first) % n_classes < n % n_classes) for c in range(n_classes)}


def _draw(pool: Pool, order: Sequence[int], n: int, data: _Data, extra: int, used: set[int]) -> list[int]:
    """The first n usable ids of `order` (not used, see `usable`); with balance, `_quota` of each
    class. Fewer than n when the pool runs out."""
    quota = _quota(n, data.n_classes, extra) if data.balance else {}
    out: list[int] = []
    for i in map(int, order):
        if len(out) == n:
            break
        if i in used:
            continue
        row = pool[i]
        if not usable(row) or (data.balance and quota[row[1]] == 0):
            continue
        if data.balance:
            quota[row[1]] -= 1
        out.append(i)
    return out


def _too_few(key: str, n: int, pool: Pool, ids: Sequence[int], data: _Data) -> InputError:
    """The error for asking more than exists, with the number that does."""
    counts = [0] * max(data.n_classes, 1)
    if data.kind == "chess":  # every position is usable: count without parsing a big puzzle file
        counts[0] = len(ids)
    else:
        for i in ids:
            row = pool[int(i)]
            counts[row[1] if data.balance else 0] += usable(row)
    available = data.n_classes * min(counts) if data.balance else sum(counts)
    what = "class-balanced examples (balance = true)" if data.balance else USABLE[data.kind]
    return InputError(
        f"{key} = {n} asks for more data than '{data.name}' has: {available} {what} are available "
        f"for {'the test set' if key == 'n_test' else 'halves A and B'}. Lower {key}"
        + (" or n_total." if data.name in N_TOTAL_DATASETS else ".")
    )


class _Cached(Sequence):
    """Remembers each row a draw looked at, so lazily formatted hub rows are formatted once."""

    def __init__(self, pool: Pool):
        self._pool = pool
        self._rows: dict[int, Example] = {}

    def __len__(self) -> int:
        return len(self._pool)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        if i not in self._rows:
            self._rows[i] = self._pool[i]
        return self._rows[i]


def _split(pool: Pool, ids: list[int], data: _Data) -> Split:
    rows = [pool[i] for i in ids]
    choices = None if data.kind == "classify" else [tuple(row[2]) for row in rows]  # type: ignore[misc]
    return Split([row[0] for row in rows], [row[1] for row in rows], ids, None, choices, data.n_classes)


def _train_ids(cfg: dict, train: Pool, held_out: set[int], data: _Data) -> np.ndarray:
    """The train pool's ids A and B may draw from: all but the held-out test ids, or with
    train_pool = "fixed" one pool of n_train drawn with the data seed."""
    n_train = cfg["n_train"]
    keep = np.ones(len(train), dtype=bool)
    keep[list(held_out)] = False
    remaining = np.flatnonzero(keep)
    if cfg.get("train_pool", "per_seed") != "fixed":
        return remaining
    # one pool of n_train examples for every run seed (drawn with the data seed): seeds only
    # re-split it into A and B, so cached features of the pool serve every seed
    fixed = _draw(train, _rng("w2s/pool", cfg["seed"]).permutation(remaining), n_train, data, 1, set())
    if len(fixed) < n_train:
        raise _too_few("n_train", n_train, train, remaining, data)
    return np.array(sorted(fixed))


def make_splits(cfg: dict, seed: int) -> dict[str, Split]:
    """Halves "A" (weak supervisor's GT), "B" (weak labels / student) and "test", pairwise disjoint.

    The test set depends only on cfg["seed"], so it is shared by every job and run seed of a recipe;
    A and B are the first n_train of the remaining train pool shuffled with the run `seed`.
    """
    name, _ = source(cfg)
    loaded_train, loaded_test, n_classes = load_pools(cfg)
    data = _Data(name, cfg.get("kind", "classify"), n_classes, bool(cfg.get("balance", False)))
    train = _Cached(loaded_train)
    test_pool = train if loaded_test is None else _Cached(loaded_test)
    n_train, n_test = cfg["n_train"], cfg["n_test"]

    test_order = _rng("w2s/test", cfg["seed"]).permutation(len(test_pool))
    test_ids = _draw(test_pool, test_order, n_test, data, 1, set())
    if len(test_ids) < n_test:
        raise _too_few("n_test", n_test, test_pool, range(len(test_pool)), data)

    remaining = _train_ids(cfg, train, set(test_ids) if test_pool is train else set(), data)
    order = _rng("w2s/train", seed).permutation(remaining)
    half = n_train // 2
    a_ids = _draw(train, order, half, data, 1, set())
    b_ids = _draw(train, order, half, data, 0, set(a_ids))
    if len(a_ids) < half or len(b_ids) < half:
        raise _too_few("n_train", n_train, train, remaining, data)
    return {"A": _split(train, a_ids, data), "B": _split(train, b_ids, data), "test": _split(test_pool, test_ids, data)}


def val_rows(n: int, val_size: int, seed: int, split: str) -> list[int]:
    """The rows of a job's training half (`n` examples, half `split`) held out for validation, in order.

    `val_size` rows drawn with the run seed and the half's name: every job of a seed that trains on
    the same half holds out the same rows (the weak GT job and the ceiling alike), and a bootstrap
    step that trains on the other half holds out other rows. [] for val_size 0 (no validation).
    """
    if val_size <= 0:
        return []
    if val_size >= n:
        raise InputError(
            f"[train] val_size = {val_size} leaves no training examples: the training half {split} has {n} "
            f"(data.n_train / 2). Lower val_size in the recipe or raise n_train."
        )
    return sorted(int(i) for i in _rng("w2s/val", seed, split).permutation(n)[:val_size])
