"""The shapes every data module shares: an example, a pool of them, a drawn split, a registry entry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Example = tuple[str, int]  # (text, binary label)
Pool = Sequence[Example]  # a list works; hub pools format rows lazily on indexing


@dataclass(frozen=True)
class Split:
    """One drawn set; ids index the pool it came from (train pool for A/B, test or train pool for test)."""

    texts: list[str]
    labels: list[int]
    ids: list[int]


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
