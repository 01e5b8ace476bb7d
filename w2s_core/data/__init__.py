"""Datasets and deterministic A/B/test splits for weak-to-strong runs. Never imports torch.

types.py           Example, Pool, Split, DatasetInfo
registry.py        DATASETS (every name a recipe may use) and dataset_fingerprint
hub.py             Hugging Face Hub sources, the loader (Parquet fallback for script-based repos), first formatters
eleuther.py        the EleutherAI/w2s breadth: formatters and registry entries
cards.py           licence and rows per split, as the Hub dataset cards give them
cache.py           where the Hugging Face caches are, what is in them, the offline variables
synthetic.py       the offline word-polarity task (and the tiny models' vocabulary)
movie_snippets.py  the demo's offline movie-review snippets
local.py           .jsonl/.json/.csv/.parquet files and their column mapping
splits.py          make_splits: seeded, disjoint, optionally class-balanced halves A, B and test;
                   val_rows: the seeded validation rows of a job's training half
"""

from w2s_core.data.hub import (
    format_amazon_polarity,
    format_anthropic_hh,
    format_boolq,
    format_cosmos_qa,
    format_sciq,
)
from w2s_core.data.local import LOCAL_EXTENSIONS
from w2s_core.data.registry import DATASETS, dataset_fingerprint
from w2s_core.data.splits import make_splits, val_rows
from w2s_core.data.synthetic import SYNTHETIC_VOCAB, synthetic_pool
from w2s_core.data.types import DatasetInfo, Example, Pool, Split

__all__ = [
    "DATASETS",
    "LOCAL_EXTENSIONS",
    "SYNTHETIC_VOCAB",
    "DatasetInfo",
    "Example",
    "Pool",
    "Split",
    "dataset_fingerprint",
    "format_amazon_polarity",
    "format_anthropic_hh",
    "format_boolq",
    "format_cosmos_qa",
    "format_sciq",
    "make_splits",
    "synthetic_pool",
    "val_rows",
]
