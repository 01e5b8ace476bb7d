"""`w2s datasets` (the registry: sizes, splits, licence, whether cached here) and `w2s prefetch`
(everything a recipe needs, into the Hugging Face caches, for compute nodes without internet)."""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace

from w2s_core.cli import DEFAULT_RECIPE
from w2s_core.data.cache import cache_env, dataset_in_cache, offline_env
from w2s_core.data.cards import card
from w2s_core.data.hub import HUB_SOURCES, PARQUET_REVISION
from w2s_core.data.registry import DATASETS


def dataset_rows() -> list[dict]:
    """One row per registry dataset, in registry order."""
    rows = []
    for name, info in DATASETS.items():
        src = HUB_SOURCES.get(name)
        licence, sizes = card(name)
        splits = [src.train_split, src.test_split] if src else []
        rows.append(
            {
                "name": name,
                "hub_id": src.hub_id if src else None,
                "config": src.config if src else None,
                "train_split": src.train_split if src else None,
                "test_split": src.test_split if src else None,
                "rows": {s: sizes[s] for s in splits if sizes and s in sizes} if src else sizes,
                "licence": licence,
                "revision": (PARQUET_REVISION if src.parquet else src.revision) if src else None,
                "cached": dataset_in_cache(src.hub_id) if src else None,
                "description": info.description,
            }
        )
    return rows


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


def cmd_datasets(args: Namespace) -> int:
    rows = dataset_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'name':<22} {'hub id (config)':<46} {'train -> test split (rows)':<36} {'licence':<16} cached"
    print(header)
    for r in rows:
        if r["hub_id"] is None:
            where, splits, cached = "built in (offline)", "-", "n/a"
        else:
            where = r["hub_id"] + (f" ({r['config']})" if r["config"] else "")
            sizes = r["rows"] or {}
            splits = (
                f"{r['train_split']} ({_count(sizes.get(r['train_split']))}) -> "
                f"{r['test_split']} ({_count(sizes.get(r['test_split']))})"
            )
            cached = "yes" if r["cached"] else "no"
        note = "  [Parquet conversion]" if r["revision"] == PARQUET_REVISION else ""
        print(f"{r['name']:<22} {where:<46} {splits:<36} {(r['licence'] or '?'):<16} {cached}{note}")
    print(
        f"\n{len(rows)} datasets. Rows and licences as the Hub dataset cards give them; `cached` looks in "
        f"{cache_env()['HF_HUB_CACHE']} and {cache_env()['HF_DATASETS_CACHE']}. Use one with "
        '`[data] name = "..."`; presets: recipes/presets/.'
    )
    return 0


def cmd_prefetch(args: Namespace) -> int:
    if args.to:  # before huggingface_hub or datasets is imported: both freeze their cache paths then
        os.environ.update(cache_env(args.to))
    from w2s_core.spec.recipe import load_recipe
    from w2s_core.supervision.prefetch import prefetch

    recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
    items = prefetch(recipe)
    for item in items:
        print(f"{'ok' if item.ok else 'FAILED':<7} {item.kind:<8} {item.name}: {item.detail}")
    failed = [f"{i.kind} '{i.name}'" for i in items if not i.ok]
    if failed:
        print(
            f"error: prefetch of {recipe.path} incomplete: {', '.join(failed)} (see above); compute nodes "
            "without internet would fail on them.",
            file=sys.stderr,
        )
        return 1
    print(f"\nEverything {recipe.path} needs loads from the caches. On compute nodes without internet, set:")
    for key, value in offline_env(args.to).items():
        print(f"  export {key}={value}")
    print(
        f"then `w2s run {recipe.path}` reads only these caches, and fails before any job starts, naming "
        "whatever is missing."
    )
    return 0
