"""The shapes every data module shares: an example, a pool of them, a drawn split, a registry entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Example = tuple[str, int]  # (text, binary label)
Pool = Sequence[Example]  # a list works; hub pools format rows lazily on indexing


@dataclass(frozen=True)
class Split:
    """One drawn set; ids index the pool it came from (train pool for A/B, test or train pool for test).

    `positions` says which rows of the drawn set a split keeps after long inputs were dropped
    (`[data] long_inputs = "drop"`); None keeps them all. Predictions are stored and read by these
    positions, so a job and its downstream jobs agree on which example a probability belongs to.
    """

    texts: list[str]
    labels: list[int]
    ids: list[int]
    positions: list[int] | None = None

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
        )


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: how to load its pools, and what identifies their content for the fingerprint.

    `load(cfg)` returns (train_pool, test_pool or None when the test pool must be held out of train).
    `identity(cfg)` returns a JSON-able dict that changes whenever the pools' content could.
    """

    name: str
    load: Callable[[dict], tuple[Pool, Pool | None]]
    identity: Callable[[dict], dict]
    description: str = ""
    hub_id: str | None = None
    train_split: str | None = None
    test_split: str | None = None
