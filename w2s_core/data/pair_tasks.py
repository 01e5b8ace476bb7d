"""The offline pairwise tasks: `synthetic-pairs` (for the tiny models) and `movie-pairs` (the demo's).

Both make (prompt "", label, two replies) rows for `[data] kind = "pairwise"`; the preferred reply
is the more positive text, and the two replies' order comes from `pairwise.pair_row` (a sha256 of the
pair's content). Pairs whose scores are nearly tied are skipped: their preference would be noise.

synthetic-pairs: two consecutive texts of the synthetic generator (`synthetic.scored_example`),
preferred = the higher hidden polarity score, kept when the scores differ by at least
SYNTHETIC_MARGIN (a word's polarity is 0.5..2, so 1.0 is about one sentiment word). Like
`synthetic`, the train pool flips a `noise` fraction of preferences and a separately generated test
pool of the same size is clean; texts don't depend on n_total (bigger pools extend smaller ones).

movie-pairs: the 10,605 rated snippets of `movie_snippets.py` (`w2s assets install demo`),
preferred = the higher mean human rating (-4..4), kept when the ratings differ by at least
MOVIE_MARGIN = 1.0. Ratings are means of about 10-20 raters with a per-rater spread of about 1, so a
difference of 1.0 is roughly 2.5 standard errors: humans clearly agree on the order. A seeded
quarter of the snippets makes the test pool and the rest the train pool, so no test snippet is ever
seen in training; within a pool, pairs are drawn at random (a snippet appears in several pairs,
which the default n_total of 6,000 needs: disjoint pairs would give fewer than 3,000).
"""

from __future__ import annotations

import bisect
import random

from w2s_core.data import movie_snippets, synthetic
from w2s_core.data.pairwise import pair_row
from w2s_core.data.types import Example, Pool
from w2s_core.errors import InputError

SYNTHETIC_MARGIN = 1.0
MOVIE_MARGIN = 1.0
MOVIE_TEST_SHARE = 0.25
VERSION = 1  # bump when a generator's output changes: it is part of the dataset fingerprint


def synthetic_pairs(split: str, n: int, noise: float) -> list[Example]:
    """n pairs of one split; a `noise` fraction of them prefer the less positive text."""
    text_rng, noise_rng = random.Random(f"w2s/synthetic-pairs/{split}"), random.Random(f"w2s/pair-noise/{split}")
    pool: list[Example] = []
    while len(pool) < n:
        first, second = synthetic.scored_example(text_rng), synthetic.scored_example(text_rng)
        if abs(first[1] - second[1]) < SYNTHETIC_MARGIN or first[0] == second[0]:
            continue
        better, worse = (first, second) if first[1] > second[1] else (second, first)
        if noise_rng.random() < noise:
            better, worse = worse, better
        pool.append(pair_row("", better[0], worse[0]))
    return pool


def load_synthetic_pairs(cfg: dict) -> tuple[Pool, Pool | None]:
    n_total, noise = synthetic.params(cfg)
    return synthetic_pairs("train", n_total, noise), synthetic_pairs("test", n_total, 0.0)


def synthetic_pairs_identity(cfg: dict) -> dict:
    n_total, noise = synthetic.params(cfg)
    return {"n_total": n_total, "noise": noise, "margin": SYNTHETIC_MARGIN, "version": VERSION}


def _movie_n_total(cfg: dict) -> int:
    n_total = cfg.get("n_total", 6000)
    if not isinstance(n_total, int) or n_total < 1:
        raise InputError(f"movie-pairs dataset: n_total must be a positive integer, got {n_total!r}.")
    return n_total


def movie_pairs(snippets: list[tuple[str, float]], split: str, n: int) -> list[Example]:
    """n distinct pairs of `snippets` (text, rating) drawn with a seeded rng, ratings at least MOVIE_MARGIN apart."""
    rng, seen, pool = random.Random(f"w2s/movie-pairs/{split}"), set(), []
    ratings = sorted(rating for _, rating in snippets)
    possible = sum(bisect.bisect_right(ratings, r - MOVIE_MARGIN) for r in ratings)  # pairs far enough apart
    if n > possible:  # cannot happen for the shipped file and sane n_total; never loop forever
        raise InputError(
            f"movie-pairs dataset: n_total = {n} is more than the {possible} pairs the {split} snippets allow."
        )
    while len(pool) < n:
        i, j = rng.randrange(len(snippets)), rng.randrange(len(snippets))
        (text_i, rating_i), (text_j, rating_j) = snippets[i], snippets[j]
        if abs(rating_i - rating_j) < MOVIE_MARGIN or text_i == text_j or (min(i, j), max(i, j)) in seen:
            continue
        seen.add((min(i, j), max(i, j)))
        better, worse = (text_i, text_j) if rating_i > rating_j else (text_j, text_i)
        pool.append(pair_row("", better, worse))
    return pool


def load_movie_pairs(cfg: dict) -> tuple[Pool, Pool | None]:
    """Train pool of n_total pairs of the train snippets, test pool of n_total pairs of the others."""
    n_total, snippets = _movie_n_total(cfg), movie_snippets.rated()
    order = list(range(len(snippets)))
    random.Random("w2s/movie-pairs/snippets").shuffle(order)
    cut = int(len(order) * MOVIE_TEST_SHARE)
    test, train = sorted(order[:cut]), sorted(order[cut:])
    return (
        movie_pairs([snippets[i] for i in train], "train", n_total),
        movie_pairs([snippets[i] for i in test], "test", n_total),
    )


def movie_pairs_identity(cfg: dict) -> dict:
    return {
        "n_total": _movie_n_total(cfg),
        "source": movie_snippets.SOURCE,
        "margin": MOVIE_MARGIN,
        "test_share": MOVIE_TEST_SHARE,
        "version": VERSION,
    }
