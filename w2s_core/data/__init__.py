"""Dataset registry and deterministic A/B/test splits for weak-to-strong runs.

Every trainer process rebuilds its data from (cfg, seed) with `make_splits`, so splits must be a pure
function of those: all randomness comes from generators seeded by sha256 of explicit strings.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2s_core.errors import InputError, W2SError

# Synthetic task word groups. The tiny models' word-level tokenizer is built from SYNTHETIC_VOCAB:
# never reorder or edit these tuples (append-only would still change the tokenizer's ids).
_POSITIVE = (
    "good", "great", "excellent", "wonderful", "superb", "lovely", "brilliant", "delightful",
    "charming", "fantastic", "amazing", "pleasant", "enjoyable", "fresh", "clever", "warm",
    "bright", "solid", "strong", "beautiful", "happy", "fun", "smooth", "elegant",
    "moving", "funny", "gripping", "polished", "rich", "vivid", "tender", "inspired",
    "perfect", "fine", "nice", "sharp", "stunning", "honest", "sweet", "memorable",
)  # fmt: skip
_NEGATIVE = (
    "bad", "awful", "terrible", "horrible", "poor", "dull", "boring", "weak",
    "bland", "messy", "clumsy", "tedious", "stale", "cheap", "flat", "sloppy",
    "ugly", "sad", "slow", "annoying", "painful", "lazy", "shallow", "silly",
    "confusing", "forgettable", "awkward", "cold", "hollow", "tired", "broken", "rough",
    "wasted", "wrong", "grim", "noisy", "pointless", "dreadful", "clunky", "empty",
)  # fmt: skip
_NEGATIONS = ("not", "never", "hardly", "barely")  # flip the polarity of the next word
_INTENSIFIERS = ("very", "really", "quite", "truly", "rather", "so", "too", "somewhat")  # double it
_NEUTRAL = (
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
SYNTHETIC_VOCAB: list[str] = [*_POSITIVE, *_NEGATIVE, *_NEGATIONS, *_INTENSIFIERS, *_NEUTRAL]

Example = tuple[str, int]
Pool = Sequence[Example]  # a list works; hub pools format rows lazily on indexing
LOCAL_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")


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
    """

    name: str
    load: Callable[[dict], tuple[Pool, Pool | None]]
    identity: Callable[[dict], dict]
    description: str = ""
    hub_id: str | None = None
    train_split: str | None = None
    test_split: str | None = None


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from explicit parts via sha256: identical in every process and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


# ---------------------------------------------------------------- Hugging Face Hub datasets


class _HubRows(Sequence):
    """Formats hub rows on access (big pools stay in Arrow); each row's rng depends only on its index."""

    def __init__(self, rows: Any, formatter: Callable[[dict, random.Random], Example], key: str):
        self._rows, self._formatter, self._key = rows, formatter, key

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        return self._formatter(self._rows[int(i)], random.Random(f"{self._key}/{int(i)}"))


def _hub_load(name: str, hub_id: str, revision: str | None, split: str) -> Any:
    """`datasets.load_dataset`, with failures turned into an actionable W2SError."""
    import datasets  # slow import: only trainers that use the Hub pay for it

    try:
        return datasets.load_dataset(hub_id, revision=revision, split=split)
    except Exception as exc:  # offline, not found, bad revision: all need the same advice
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise W2SError(
            f"Could not load dataset '{name}' (split '{split}') from the Hugging Face Hub as "
            f"'{hub_id}' (revision {revision or 'default'}): the Hub could not be reached or the "
            f"dataset was not found ({type(exc).__name__}: {first_line}). To work offline, save the "
            f"data as a local file and use `path = \"data/{name}.jsonl\"` (with text_column and "
            f"label_column) instead of `name = \"{name}\"` in the recipe's [data] table."
        ) from exc


def _hub_entry(
    name: str,
    hub_id: str,
    formatter: Callable[[dict, random.Random], Example],
    test_split: str,
    description: str,
    version: int = 1,
) -> DatasetInfo:
    """A registry entry for a Hub dataset; bump `version` whenever its formatter's output changes."""

    def load(cfg: dict) -> tuple[Pool, Pool | None]:
        train, test = (
            _HubRows(_hub_load(name, hub_id, cfg.get("revision"), split), formatter, f"{name}/{split}")
            for split in ("train", test_split)
        )
        return train, test

    def identity(cfg: dict) -> dict:
        return {"hub_id": hub_id, "revision": cfg.get("revision"), "formatter_version": version,
                "splits": ["train", test_split]}  # fmt: skip

    return DatasetInfo(name, load, identity, description, hub_id, "train", test_split)


def format_sciq(row: dict, rng: random.Random) -> Example:
    """The correct answer (label 1) or one random distractor (label 0), each with p=0.5."""
    label = int(rng.random() < 0.5)
    distractors = [row["distractor1"], row["distractor2"], row["distractor3"]]
    answer = row["correct_answer"] if label else rng.choice(distractors)
    return f"Q: {row['question']} A: {answer}", label


def format_boolq(row: dict, rng: random.Random) -> Example:
    return f"Passage: {row['passage']}\nQuestion: {row['question']}", int(row["answer"])


def format_amazon_polarity(row: dict, rng: random.Random) -> Example:
    return f"{row['title']}\n{row['content']}", int(row["label"])


def format_cosmos_qa(row: dict, rng: random.Random) -> Example:
    """Correct answer (1) or another option (0) with p=0.5; as in the reference, a correct
    "None of the above choices ." always yields a distractor (label 0)."""
    answers = [row[f"answer{i}"] for i in range(4)]
    true_answer = answers[int(row["label"])]
    label = 0 if "None of the above choices" in true_answer else int(rng.random() < 0.5)
    answer = true_answer if label else rng.choice([a for a in answers if a != true_answer])
    return f"Context: {row['context']}\nQuestion: {row['question']}\nAnswer: {answer}", label


def format_anthropic_hh(row: dict, rng: random.Random) -> Example:
    """The conversation ending in the chosen (1) or rejected (0) reply with p=0.5. The reference
    (openai/weak-to-strong) reports chance accuracy for every model size on this format."""
    label = int(rng.random() < 0.5)
    return (row["chosen"] if label else row["rejected"]), label


# ---------------------------------------------------------------- synthetic task

_SYNTHETIC_VERSION = 1


def _polarity_weights() -> dict[str, float]:
    """Hidden per-word polarity: positive words in [0.5, 2], negative ones in [-2, -0.5]."""
    rng = random.Random("w2s/synthetic/weights")
    return {w: rng.uniform(0.5, 2.0) * (1 if w in _POSITIVE else -1) for w in (*_POSITIVE, *_NEGATIVE)}


_SYNTHETIC_WEIGHTS = _polarity_weights()


def _synthetic_example(rng: random.Random) -> tuple[str, int]:
    """8-24 words; label = sign of the summed polarity, where a negation flips the next word and an
    intensifier doubles it (context that bag-of-words models miss, so bigger models can do better)."""
    length, words, score = rng.randint(8, 24), [], 0.0
    sentiment = (*_POSITIVE, *_NEGATIVE)
    while len(words) < length:
        r, room = rng.random(), length - len(words) >= 2
        if r < 0.20 or (len(words) == length - 1 and score == 0.0):
            word = rng.choice(sentiment)
            words.append(word)
            score += _SYNTHETIC_WEIGHTS[word]
        elif r < 0.22 and room:  # rare enough that bag-of-words still gets ~83%
            word = rng.choice(sentiment)
            words += [rng.choice(_NEGATIONS), word]
            score -= _SYNTHETIC_WEIGHTS[word]
        elif r < 0.25 and room:
            word = rng.choice(sentiment)
            words += [rng.choice(_INTENSIFIERS), word]
            score += 2 * _SYNTHETIC_WEIGHTS[word]
        else:
            words.append(rng.choice(_NEUTRAL))
    return " ".join(words), int(score > 0)


def synthetic_pool(split: str, n: int, noise: float) -> list[Example]:
    """n examples of one split; texts don't depend on `noise` or `n` (bigger pools extend smaller ones)."""
    text_rng, noise_rng = random.Random(f"w2s/synthetic/{split}"), random.Random(f"w2s/noise/{split}")
    pool = []
    for _ in range(n):
        text, label = _synthetic_example(text_rng)
        pool.append((text, 1 - label if noise_rng.random() < noise else label))
    return pool


def _synthetic_params(cfg: dict) -> tuple[int, float]:
    n_total, noise = cfg.get("n_total", 4000), cfg.get("noise", 0.05)
    if not isinstance(n_total, int) or n_total < 1:
        raise InputError(f"Synthetic dataset: n_total must be a positive integer, got {n_total!r}.")
    if not isinstance(noise, (int, float)) or not 0 <= noise < 0.5:
        raise InputError(f"Synthetic dataset: noise must be a rate in [0, 0.5), got {noise!r}.")
    return n_total, float(noise)


def _load_synthetic(cfg: dict) -> tuple[Pool, Pool | None]:
    """Train pool of n_total noisy examples; a separately generated test pool of n_total clean ones,
    so test accuracy measures the true rule."""
    n_total, noise = _synthetic_params(cfg)
    return synthetic_pool("train", n_total, noise), synthetic_pool("test", n_total, 0.0)


def _synthetic_identity(cfg: dict) -> dict:
    n_total, noise = _synthetic_params(cfg)
    return {"n_total": n_total, "noise": noise, "version": _SYNTHETIC_VERSION}


def _load_movie_snippets(cfg: dict) -> tuple[Pool, None]:
    """id, mean rating (-4..4), text; label = rating > 0; ratings of exactly 0 dropped (Hutto & Gilbert 2014)."""
    from w2s_core.assets import movie_snippets_file

    pool = []
    for line in movie_snippets_file().read_text(encoding="latin-1").splitlines():
        _, rating, text = line.rstrip("\r").split("\t", 2)
        if float(rating) != 0:
            pool.append((text.strip(), int(float(rating) > 0)))
    return pool, None


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _hub_entry("sciq", "allenai/sciq", format_sciq, "test", "Science exam QA, answer vs distractor"),
        _hub_entry("boolq", "google/boolq", format_boolq, "validation", "Yes/no questions on a passage"),
        _hub_entry("amazon_polarity", "fancyzhx/amazon_polarity", format_amazon_polarity, "test",
                   "Amazon review sentiment"),
        _hub_entry("cosmos_qa", "allenai/cosmos_qa", format_cosmos_qa, "validation",
                   "Commonsense reading comprehension, answer vs distractor"),
        _hub_entry("anthropic_hh", "Anthropic/hh-rlhf", format_anthropic_hh, "test",
                   "Chosen vs rejected assistant reply (chance level in the reference)"),
        DatasetInfo("synthetic", _load_synthetic, _synthetic_identity,
                    "Generated word-polarity task for the tiny built-in models (offline)"),
        DatasetInfo("movie-snippets", _load_movie_snippets, lambda cfg: {"source": "vaderSentiment==3.3.2", "version": 1},
                    "10,605 movie-review snippets with human sentiment ratings (offline, `w2s assets install demo`)"),
    )
}  # fmt: skip


# ---------------------------------------------------------------- local files


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"Data file {path} does not exist (from the recipe's [data] path).")


def _json_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"Data file {path}, line {number}: not valid JSON ({exc}).") from exc


def _columns(cfg: dict) -> dict[str, str]:
    """The recipe's column mapping, keyed by its config key (for error messages)."""
    return {
        "text_column": cfg.get("text_column") or "text",
        "label_column": cfg.get("label_column") or "label",
    }


def _read_records(path: Path) -> tuple[list[dict], list[str]]:
    """Rows and column names of a local .jsonl/.json/.csv/.parquet file."""
    suffix = path.suffix.lower()
    if suffix not in LOCAL_EXTENSIONS:
        raise InputError(
            f"Data file {path} has an unsupported extension '{path.suffix}'; supported: "
            f"{', '.join(LOCAL_EXTENSIONS)}."
        )
    _require_file(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return table.to_pylist(), table.schema.names
        with path.open(encoding="utf-8-sig", newline="") as f:
            if suffix == ".csv":
                reader = csv.DictReader(f)
                return list(reader), list(reader.fieldnames or [])
            if suffix == ".json":
                rows = json.load(f)
            else:
                rows = [_json_line(path, n, line) for n, line in enumerate(f, 1) if line.strip()]
    except InputError:
        raise
    except Exception as exc:  # malformed JSON/CSV/parquet: say which file
        raise InputError(f"Could not read data file {path}: {type(exc).__name__}: {exc}.") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"Data file {path} must hold records: one JSON object per row.")
    return rows, list(dict.fromkeys(k for r in rows for k in r))


_TRUE, _FALSE = ("1", "true"), ("0", "false")


def _binary(value: Any) -> int | None:
    """0/1, booleans, and "0"/"1"/"true"/"false" (any case) as an int label; None if not binary."""
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return int(value.strip().lower() in _TRUE)
    return None


def _load_local(cfg: dict) -> list[Example]:
    path = Path(cfg["path"])
    rows, columns = _read_records(path)
    mapping = _columns(cfg)
    for key, column in mapping.items():
        if column not in columns:
            raise InputError(
                f"Data file {path} has no column '{column}' ({key} in the recipe's [data] table); "
                f"its columns are: {', '.join(map(str, columns)) or '(none)'}."
            )
    text_col, label_col = mapping["text_column"], mapping["label_column"]
    labels = [_binary(r.get(label_col)) for r in rows]
    bad = list(dict.fromkeys(repr(r.get(label_col)) for r, y in zip(rows, labels) if y is None))
    if bad:
        raise InputError(
            f"Data file {path}: labels must be binary (0/1, true/false), but column '{label_col}' "
            f"(label_column) has {len(bad)} other distinct value(s), e.g. {', '.join(bad[:5])}."
        )
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in rows]
    return list(zip(texts, labels))  # type: ignore[arg-type]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- public API


def _source(cfg: dict) -> tuple[str, DatasetInfo | None]:
    """A human name for the data, and its registry entry (None for a local file)."""
    if ("name" in cfg) == ("path" in cfg):
        raise InputError(
            "The recipe's [data] table needs exactly one of `name` (a registered dataset) or `path`."
        )
    if "path" in cfg:
        return str(cfg["path"]), None
    if cfg["name"] not in DATASETS:
        raise InputError(
            f"Unknown dataset name '{cfg['name']}' in the recipe's [data] table; registered: "
            f"{', '.join(DATASETS)}. For your own data use `path = \"...\"` (.jsonl/.json/.csv/.parquet)."
        )
    return cfg["name"], DATASETS[cfg["name"]]


def dataset_fingerprint(cfg: dict) -> str:
    """sha256 hex of what determines the pools' content; n_train, n_test and seeds are left to the planner."""
    source, info = _source(cfg)
    if info is None:
        path = Path(source)
        _require_file(path)
        identity = {"sha256": _file_sha256(path), **_columns(cfg)}
    else:
        identity = {"dataset": info.name, **info.identity(cfg)}
    identity["balance"] = bool(cfg.get("balance", False))
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


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


def _too_few(key: str, n: int, pool: Pool, ids: Sequence[int], balance: bool, source: str) -> InputError:
    """The error for asking more than exists, with the number that does."""
    counts = [0, 0]
    for i in ids:
        text, label = pool[int(i)]
        counts[label] += bool(text.strip())
    available = 2 * min(counts) if balance else sum(counts)
    kind = "class-balanced examples (balance = true)" if balance else "examples with non-blank text"
    return InputError(
        f"{key} = {n} asks for more data than '{source}' has: {available} {kind} are available "
        f"for {'the test set' if key == 'n_test' else 'halves A and B'}. Lower {key}"
        + (" or n_total." if source == "synthetic" else ".")
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


def make_splits(cfg: dict, seed: int) -> dict[str, Split]:
    """Halves "A" (weak supervisor's GT), "B" (weak labels / student) and "test", pairwise disjoint.

    The test set depends only on cfg["seed"], so it is shared by every job and run seed of a recipe;
    A and B are the first n_train of the remaining train pool shuffled with the run `seed`.
    """
    source, info = _source(cfg)
    loaded = info.load(cfg) if info else (_load_local(cfg), None)
    train = _Cached(loaded[0])
    test_pool = train if loaded[1] is None else _Cached(loaded[1])
    n_train, n_test, balance = cfg["n_train"], cfg["n_test"], bool(cfg.get("balance", False))

    test_order = _rng("w2s/test", cfg["seed"]).permutation(len(test_pool))
    test_ids = _draw(test_pool, test_order, n_test, balance, 1, set())
    if len(test_ids) < n_test:
        raise _too_few("n_test", n_test, test_pool, range(len(test_pool)), balance, source)

    held_out = set(test_ids) if test_pool is train else set()
    keep = np.ones(len(train), dtype=bool)
    keep[list(held_out)] = False
    remaining = np.flatnonzero(keep)
    if cfg.get("train_pool", "per_seed") == "fixed":
        # one pool of n_train examples for every run seed (drawn with the data seed): seeds only
        # re-split it into A and B, so cached features of the pool serve every seed
        fixed = _draw(train, _rng("w2s/pool", cfg["seed"]).permutation(remaining), n_train, balance, 1, set())
        if len(fixed) < n_train:
            raise _too_few("n_train", n_train, train, remaining, balance, source)
        remaining = np.array(sorted(fixed))
    order = _rng("w2s/train", seed).permutation(remaining)
    half = n_train // 2
    a_ids = _draw(train, order, half, balance, 1, set())
    b_ids = _draw(train, order, half, balance, 0, set(a_ids))
    if len(a_ids) < half or len(b_ids) < half:
        raise _too_few("n_train", n_train, train, remaining, balance, source)
    return {"A": _split(train, a_ids), "B": _split(train, b_ids), "test": _split(test_pool, test_ids)}
