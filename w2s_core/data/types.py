"""The shapes every data module shares: an example, a pool of them, a drawn split, a registry entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# What one example is ([data] kind): a label among K classes ("classify"), the preferred one of two
# replies to a prompt ("pairwise"), or the right move among a position's legal moves ("chess").
DATA_KINDS = ("classify", "pairwise", "chess")

# A pool row. classify: (text, label in 0..K-1). pairwise and chess: (text, label, choices), where
# text is the shared context (pairwise: the prompt, maybe ""; chess: the position's prompt), choices
# the candidates (pairwise: the two replies; chess: the legal moves in UCI, sorted) and label the
# index of the right one. Rows are indexed (row[0], row[1], row[2]), never unpacked into two names.
Example = tuple[str, int] | tuple[str, int, tuple[str, ...]]
Pool = Sequence[Example]  # a list works; hub pools format rows lazily on indexing


@dataclass(frozen=True)
class Split:
    """One drawn set; ids index the pool it came from (train pool for A/B, test or train pool for test).

    `positions` says which rows of the drawn set a split keeps after long inputs were dropped
    (`[data] long_inputs = "drop"`); None keeps them all. Predictions are stored and read by these
    positions, so a job and its downstream jobs agree on which example a probability belongs to.

    `choices` holds each example's candidates for pairwise and chess data (None for classify);
    `n_classes` is K for classify (the same for every split of a dataset), 2 for pairwise and 0 for
    chess, whose candidate sets differ per example.
    """

    texts: list[str]
    labels: list[int]
    ids: list[int]
    positions: list[int] | None = None
    choices: list[tuple[str, ...]] | None = None
    n_classes: int = 2

    @property
    def index(self) -> list[int]:
        """The rows of the drawn set this split holds, in order."""
        return list(range(len(self.texts))) if self.positions is None else list(self.positions)

    def keep(self, rows: list[int]) -> Split:
        """The split with only `rows` (indices into this split, ascending), remembering their drawn positions."""
        index = self.index
        return Split(
            [self.texts[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.ids[i] for i in rows],
            [index[i] for i in rows],
            None if self.choices is None else [self.choices[i] for i in rows],
            self.n_classes,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load its pools, and what identifies their content for the fingerprint.

    `load(cfg)` returns (train_pool, test_pool or None when the test pool must be held out of train),
    with rows of the kind `cfg["kind"]` asks for (one of `kinds`, the kinds the entry supports).
    `identity(cfg)` returns a JSON-able dict that changes whenever the pools' content could.
    """

    name: str
    load: Callable[[dict], tuple[Pool, Pool | None]]
    identity: Callable[[dict], dict]
    description: str = ""
    hub_id: str | None = None
    train_split: str | None = None
    test_split: str | None = None
    kinds: tuple[str, ...] = ("classify",)
