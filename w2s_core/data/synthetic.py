"""The synthetic word-polarity task: offline data for the tiny built-in models.

Each example is 8-24 words; its label is the sign of the summed hidden polarity of its sentiment
words, where a negation flips the next word and an intensifier doubles it. A bag-of-words model
gets about 83%; context-aware (bigger) models can do better, which is what weak-to-strong needs.
Everything is seeded by fixed strings, so every process generates the same pools.
"""

from __future__ import annotations

import random

from w2s_core.data.types import Example, Pool
from w2s_core.errors import InputError

# Synthetic task word groups. The tiny models' word-level tokenizer is built from SYNTHETIC_VOCAB:
# never reorder or edit these tuples (append-only would still change the tokenizer's ids).
POSITIVE = (
    "good", "great", "excellent", "wonderful", "superb", "lovely", "brilliant", "delightful",
    "charming", "fantastic", "amazing", "pleasant", "enjoyable", "fresh", "clever", "warm",
    "bright", "solid", "strong", "beautiful", "happy", "fun", "smooth", "elegant",
    "moving", "funny", "gripping", "polished", "rich", "vivid", "tender", "inspired",
    "perfect", "fine", "nice", "sharp", "stunning", "honest", "sweet", "memorable",
)  # fmt: skip
NEGATIVE = (
    "bad", "awful", "terrible", "horrible", "poor", "dull", "boring", "weak",
    "bland", "messy", "clumsy", "tedious", "stale", "cheap", "flat", "sloppy",
    "ugly", "sad", "slow", "annoying", "painful", "lazy", "shallow", "silly",
    "confusing", "forgettable", "awkward", "cold", "hollow", "tired", "broken", "rough",
    "wasted", "wrong", "grim", "noisy", "pointless", "dreadful", "clunky", "empty",
)  # fmt: skip
NEGATIONS = ("not", "never", "hardly", "barely")  # flip the polarity of the next word
INTENSIFIERS = ("very", "really", "quite", "truly", "rather", "so", "too", "somewhat")  # double it
NEUTRAL = (
    "the", "a", "an", "this", "that", "it", "was", "is",
    "movie", "film", "story", "plot", "cast", "acting", "music", "ending",
    "scene", "script", "director", "camera", "dialogue", "pacing", "book", "show",
    "and", "but", "with", "of", "in", "on", "at", "for",
    "overall", "also", "just", "still", "again", "then", "some", "every",
    "felt", "seemed", "looked", "sounded", "became", "remained", "stayed", "appeared",
    "first", "second", "last", "whole", "entire", "main", "final", "opening",
    "i", "we", "they", "you", "he", "she", "my", "our",
    "thought", "found", "saw", "watched", "read", "heard", "said", "called",
    "character", "hero", "villain", "actor", "actress", "writer", "audience", "critic",
    "time", "year", "night", "day", "hour", "minute", "moment", "world",
)  # fmt: skip
SYNTHETIC_VOCAB: list[str] = [*POSITIVE, *NEGATIVE, *NEGATIONS, *INTENSIFIERS, *NEUTRAL]

VERSION = 1  # bump when the generator's output changes: it is part of the dataset fingerprint


def _polarity_weights() -> dict[str, float]:
    """Hidden per-word polarity: positive words in [0.5, 2], negative ones in [-2, -0.5]."""
    rng = random.Random("w2s/synthetic/weights")
    return {w: rng.uniform(0.5, 2.0) * (1 if w in POSITIVE else -1) for w in (*POSITIVE, *NEGATIVE)}


WEIGHTS = _polarity_weights()


def scored_example(rng: random.Random) -> tuple[str, float]:
    """8-24 words and their hidden polarity score: the summed word polarity, where a negation flips
    the next word and an intensifier doubles it (context that bag-of-words models miss, so bigger
    models can do better). The label of the classify task is the score's sign."""
    length, words, score = rng.randint(8, 24), [], 0.0
    sentiment = (*POSITIVE, *NEGATIVE)
    while len(words) < length:
        r, room = rng.random(), length - len(words) >= 2
        if r < 0.20 or (len(words) == length - 1 and score == 0.0):
            word = rng.choice(sentiment)
            words.append(word)
            score += WEIGHTS[word]
        elif r < 0.22 and room:  # rare enough that bag-of-words still gets ~83%
            word = rng.choice(sentiment)
            words += [rng.choice(NEGATIONS), word]
            score -= WEIGHTS[word]
        elif r < 0.25 and room:
            word = rng.choice(sentiment)
            words += [rng.choice(INTENSIFIERS), word]
            score += 2 * WEIGHTS[word]
        else:
            words.append(rng.choice(NEUTRAL))
    return " ".join(words), score


def _example(rng: random.Random) -> Example:
    """One example of the classify task: label = the sign of its polarity score."""
    text, score = scored_example(rng)
    return text, int(score > 0)


def synthetic_pool(split: str, n: int, noise: float) -> list[Example]:
    """n examples of one split; texts don't depend on `noise` or `n` (bigger pools extend smaller ones)."""
    text_rng, noise_rng = random.Random(f"w2s/synthetic/{split}"), random.Random(f"w2s/noise/{split}")
    pool = []
    for _ in range(n):
        row = _example(text_rng)
        pool.append((row[0], 1 - row[1] if noise_rng.random() < noise else row[1]))
    return pool


def params(cfg: dict) -> tuple[int, float]:
    n_total, noise = cfg.get("n_total", 4000), cfg.get("noise", 0.05)
    if not isinstance(n_total, int) or n_total < 1:
        raise InputError(f"Synthetic dataset: n_total must be a positive integer, got {n_total!r}.")
    if not isinstance(noise, (int, float)) or not 0 <= noise < 0.5:
        raise InputError(f"Synthetic dataset: noise must be a rate in [0, 0.5), got {noise!r}.")
    return n_total, float(noise)


def load(cfg: dict) -> tuple[Pool, Pool | None]:
    """Train pool of n_total noisy examples; a separately generated test pool of n_total clean ones,
    so test accuracy measures the true rule."""
    n_total, noise = params(cfg)
    return synthetic_pool("train", n_total, noise), synthetic_pool("test", n_total, 0.0)


def identity(cfg: dict) -> dict:
    n_total, noise = params(cfg)
    return {"n_total": n_total, "noise": noise, "version": VERSION}
