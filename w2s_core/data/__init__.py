"""Datasets and deterministic A/B/test splits for weak-to-strong runs. Never imports torch.

types.py           Example, Pool, Split, DatasetInfo, DATA_KINDS (classify, pairwise, chess)
registry.py        DATASETS (every name a recipe may use), dataset_fingerprint, kind_problem,
                   load_pools (the pools of any kind) and class_count
hub.py             Hugging Face Hub sources, the loader (Parquet fallback for script-based repos), first
                   formatters (anthropic_hh also as pairs)
eleuther.py        the EleutherAI/w2s breadth: formatters and registry entries
cards.py           licence and rows per split, as the Hub dataset cards give them
cache.py           where the Hugging Face caches are, what is in them, the offline variables
synthetic.py       the offline word-polarity task (and the tiny models' vocabulary)
movie_snippets.py  the demo's offline movie-review snippets
local.py           .jsonl/.json/.csv/.parquet files, their column mapping, K-class labels
pairwise.py        pairwise comparisons: pair_text, the content-seeded reply order, local pair files
pair_tasks.py      the offline pairwise tasks synthetic-pairs and movie-pairs
puzzles.py         chess: the Lichess puzzle CSV, chess_prompt, write_puzzle_csv
mate_in_one.py     the offline chess task mate-in-one (generated with python-chess, cached)
prompts.py         prompting formats: PromptFormat, prompt_format, render
splits.py          make_splits: seeded, disjoint, optionally class-balanced halves A, B and test;
                   val_rows: the seeded validation rows of a job's training half
"""

from w2s_core.data.hub import (
    format_amazon_polarity,
    format_anthropic_hh,
    format_anthropic_hh_pair,
    format_boolq,
    format_cosmos_qa,
    format_sciq,
    split_hh,
)
from w2s_core.data.local import LOCAL_EXTENSIONS
from w2s_core.data.pairwise import pair_row, pair_text
from w2s_core.data.prompts import PromptFormat, prompt_format, render
from w2s_core.data.puzzles import chess_prompt, legal_ucis, puzzle_row, write_puzzle_csv
from w2s_core.data.registry import DATASETS, class_count, dataset_fingerprint, kind_problem, load_pools
from w2s_core.data.splits import make_splits, val_rows
from w2s_core.data.synthetic import SYNTHETIC_VOCAB, synthetic_pool
from w2s_core.data.types import DATA_KINDS, DatasetInfo, Example, Pool, Split

__all__ = [
    "DATASETS",
    "DATA_KINDS",
    "LOCAL_EXTENSIONS",
    "SYNTHETIC_VOCAB",
    "DatasetInfo",
    "Example",
    "Pool",
    "PromptFormat",
    "Split",
    "chess_prompt",
    "class_count",
    "dataset_fingerprint",
    "format_amazon_polarity",
    "format_anthropic_hh",
    "format_anthropic_hh_pair",
    "format_boolq",
    "format_cosmos_qa",
    "format_sciq",
    "kind_problem",
    "legal_ucis",
    "load_pools",
    "make_splits",
    "pair_row",
    "pair_text",
    "prompt_format",
    "puzzle_row",
    "render",
    "split_hh",
    "synthetic_pool",
    "val_rows",
    "write_puzzle_csv",
]
