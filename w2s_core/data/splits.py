"""Deterministic A/B/test splits (and the validation rows of a training half): the only way a trainer gets its data.

Every trainer process rebuilds its data from (cfg, seed) with `make_splits`, so splits must be a pure
function of those: all randomness comes from generators seeded by sha256 of explicit strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from w2s_core.data.local import load_local
from w2s_core.data.registry import source
from w2s_core.data.types import Example, Pool, Split
from w2s_core.errors import InputError


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from explicit parts via sha256: identical in every process and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _draw(pool: Pool, order: Sequence[int], n: int, balance: bool, extra: int, used: set[int]) -> list[int]:
    """The first n usable ids of `order` (not used, non-blank text); with `balance`, n//2 per class and
    the odd one of class `extra`. Fewer than n when the pool runs out."""
    quota = {0: n // 2 + (n % 2) * (extra == 0), 1: n // 2 + (n % 2) * (extra == 1)}
    out: list[int] = []
    for i in map(int, order):
        if len(out) == n:
            break
        if i in used:
            continue
        text, label = pool[i]
        if not text.strip() or (balance and quota[label] == 0):
            continue
        quota[label] -= 1
        out.append(i)
    return out


def _too_few(key: str, n: int, pool: Pool, ids: Sequence[int], balance: bool, name: str) -> InputError:
    """The error for asking more than exists, with the number that does."""
    counts = [0, 0]
    for i in ids:
        text, label = pool[int(i)]
        counts[label] += bool(text.strip())
    available = 2 * min(counts) if balance else sum(counts)
    kind = "class-balanced examples (balance = true)" if balance else "examples with non-blank text"
    return InputError(
        f"{key} = {n} asks for more data than '{name}' has: {available} {kind} are available "
        f"for {'the test set' if key == 'n_test' else 'halves A and B'}. Lower {key}"
        + (" or n_total." if name == "synthetic" else ".")
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


def _split(pool: Pool, ids: list[int]) -> Split:
    examples = [pool[i] for i in ids]
    return Split([t for t, _ in examples], [y for _, y in examples], ids)


def _train_ids(cfg: dict, train: Pool, held_out: set[int], name: str) -> np.ndarray:
    """The train pool's ids A and B may draw from: all but the held-out test ids, or with
    train_pool = "fixed" one pool of n_train drawn with the data seed."""
    n_train, balance = cfg["n_train"], bool(cfg.get("balance", False))
    keep = np.ones(len(train), dtype=bool)
    keep[list(held_out)] = False
    remaining = np.flatnonzero(keep)
    if cfg.get("train_pool", "per_seed") != "fixed":
        return remaining
    # one pool of n_train examples for every run seed (drawn with the data seed): seeds only
    # re-split it into A and B, so cached features of the pool serve every seed
    fixed = _draw(train, _rng("w2s/pool", cfg["seed"]).permutation(remaining), n_train, balance, 1, set())
    if len(fixed) < n_train:
        raise _too_few("n_train", n_train, train, remaining, balance, name)
    return np.array(sorted(fixed))


def make_splits(cfg: dict, seed: int) -> dict[str, Split]:
    """Halves "A" (weak supervisor's GT), "B" (weak labels / student) and "test", pairwise disjoint.

    The test set depends only on cfg["seed"], so it is shared by every job and run seed of a recipe;
    A and B are the first n_train of the remaining train pool shuffled with the run `seed`.
    """
    name, info = source(cfg)
    loaded = info.load(cfg) if info else (load_local(cfg), None)
    train = _Cached(loaded[0])
    test_pool = train if loaded[1] is None else _Cached(loaded[1])
    n_train, n_test, balance = cfg["n_train"], cfg["n_test"], bool(cfg.get("balance", False))

    test_order = _rng("w2s/test", cfg["seed"]).permutation(len(test_pool))
    test_ids = _draw(test_pool, test_order, n_test, balance, 1, set())
    if len(test_ids) < n_test:
        raise _too_few("n_test", n_test, test_pool, range(len(test_pool)), balance, name)

    remaining = _train_ids(cfg, train, set(test_ids) if test_pool is train else set(), name)
    order = _rng("w2s/train", seed).permutation(remaining)
    half = n_train // 2
    a_ids = _draw(train, order, half, balance, 1, set())
    b_ids = _draw(train, order, half, balance, 0, set(a_ids))
    if len(a_ids) < half or len(b_ids) < half:
        raise _too_few("n_train", n_train, train, remaining, balance, name)
    return {"A": _split(train, a_ids), "B": _split(train, b_ids), "test": _split(test_pool, test_ids)}


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
