"""Long inputs (`[data] long_inputs`): which examples are longer than a model reads, and leaving them out.

An input longer than a model's `max_length` (or its tokenizer's own limit) would be cut, and the
cut part may decide its label: the tail of an anthropic_hh reply, a long boolq passage, a cosmos_qa
answer. The recipe chooses what happens:

    "drop"            (default, as the reference) leave the example out. A job's spec then holds a
                      `length_filter` naming EVERY model of the recipe (`w2s_core.spec.plan.length_filter`),
                      and an example too long for any of them is left out of its split (A, B or
                      test) in every job: all models are scored on one test pool, and a student
                      trains only on examples its weak supervisor labelled.
    "truncate_left"   keep the last tokens (special tokens kept: `w2s_core.training.models.encode`).
    "truncate_right"  keep the first tokens: what w2s did before the option existed.

"Too long" means more tokens than `token_limit` (special tokens included), i.e. exactly the inputs
`encode` would cut; the reference drops from max_ctx tokens on, one token earlier. What is measured
is the text a model reads of the example (`read_texts`): its text for a classify task; for a
pairwise task each `pair_text(prompt, reply)`, the example being too long when either is; for chess
the position's prompt joined to its longest legal move (`text + " " + move`, the continuation the
scorer reads; the scorer tokenises the two apart, which can differ from the joined text by a token
at the seam, and cuts the context on the left if it must). Truncation modes cut each text the
model reads on its own side: each reply's pair text for pairwise; chess's context always on the left. Only tokenizers
are loaded. Token counts are cached on disk per (tokenizer, texts), like probe features, so every
job of a recipe after the first reads them; the dry run (`w2s run --dry-run`) counts with the same
cache through `python -m w2s_core.training.lengths` (JSON in on stdin, JSON out), so the CLI never
imports transformers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from w2s_core.assets import PACKAGED_MODELS
from w2s_core.data import Split, make_splits
from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import Result, prediction_index, read_json, write_json
from w2s_core.paths import cache_dir, locked
from w2s_core.spec.models import local_model_dir, looks_local, model_fingerprint, sha256_text
from w2s_core.spec.registry import BUILTIN_TINY
from w2s_core.training.features import texts_digest
from w2s_core.training.models import load_tokenizer, token_limit

SPLITS = ("A", "B", "test")
# Files beside the weights that can change how a local model's folder tokenizes.
_TOKENIZER_SUFFIXES = (".json", ".txt", ".model", ".tiktoken", ".py")
_CHUNK = 2048  # texts tokenised at once: bounds memory on long pools


def long_inputs(job: dict) -> str:
    """The job's mode; a job.json without one predates the option and truncated on the right."""
    return job["data"].get("long_inputs", "truncate_right")


def truncation_side(job: dict) -> str:
    """Which end `encode` cuts: the start only with "truncate_left" (a drop-mode job has nothing left to cut)."""
    return "left" if long_inputs(job) == "truncate_left" else "right"


# --- token counts, cached -------------------------------------------------------------------


def tokenizer_fingerprint(entry: dict) -> str:
    """Changes whenever the model's tokenizer could: its identity, and a local folder's tokenizer files."""
    parts = {"model": model_fingerprint(entry), "trust_remote_code": bool(entry.get("trust_remote_code"))}
    path = entry["path"]
    if path not in BUILTIN_TINY and path not in PACKAGED_MODELS and looks_local(path):
        # model_fingerprint hashes config.json and weight sizes; a tokenizer can change without them
        folder = Path(local_model_dir(entry))
        parts["files"] = {
            p.name: sha256_text(p.read_bytes())
            for p in sorted(folder.iterdir())
            if p.is_file() and p.name.endswith(_TOKENIZER_SUFFIXES)
        }
    return sha256_text(json.dumps(parts, sort_keys=True))


def count_tokens(entry: dict, texts: Sequence[str]) -> dict:
    """{"lengths": tokens per text (special tokens included, as `encode` counts them), "model_max_length"}."""
    tok = load_tokenizer(entry)
    lengths: list[int] = []
    for start in range(0, len(texts), _CHUNK):
        # verbose=False: the too-long warning is the point here, not news
        ids = tok(list(texts[start : start + _CHUNK]), verbose=False)["input_ids"]
        lengths.extend(max(1, len(seq)) for seq in ids)  # encode gives an empty text one token
    model_max = tok.model_max_length
    return {"lengths": lengths, "model_max_length": model_max if isinstance(model_max, int) else None}


def cached_counts(entry: dict, texts: Sequence[str], fingerprint: str | None = None, digest: str | None = None) -> dict:
    """count_tokens, memoised on disk: every job of a recipe (and the dry run) counts a split once.

    Keyed by the tokenizer and the texts, not by max_length: the counts serve every max_length (the
    limit is applied by `too_long`), so a recipe sweeping max_length tokenises once. `fingerprint`
    and `digest`, when given, are `tokenizer_fingerprint(entry)` and `texts_digest(texts)`.
    """
    key = sha256_text(json.dumps([fingerprint or tokenizer_fingerprint(entry), digest or texts_digest(texts)]))
    path = cache_dir() / "lengths" / f"{key}.json"
    with locked(path.with_suffix(".lock")):  # a parallel job wanting the same counts waits, then reads
        if path.is_file():
            return read_json(path)
        counts = count_tokens(entry, texts)
        write_json(path, counts)
    return counts


def too_long(entry: dict, texts: Sequence[str], fingerprint: str | None = None, digest: str | None = None) -> set[int]:
    """Positions of the texts longer than the model reads (`token_limit` of its max_length)."""
    counts = cached_counts(entry, texts, fingerprint, digest)
    limit = token_limit(entry["max_length"], counts["model_max_length"])
    return {i for i, n in enumerate(counts["lengths"]) if n > limit}


# --- dropping -------------------------------------------------------------------------------


def read_texts(split: Split, kind: str = "classify") -> tuple[list[str], list[int] | None]:
    """The texts a model reads of the split's examples, and the example each belongs to (None: one text each).

    classify: the texts; pairwise: `pair_text(prompt, reply)` for both replies; chess: the prompt
    and its longest legal move (`text + " " + move`, by characters: UCI moves are 4 or 5).
    """
    if kind == "pairwise":
        from w2s_core.data import pair_text

        texts = [pair_text(p, c) for p, cs in zip(split.texts, split.choices) for c in cs]
        return texts, [i for i, cs in enumerate(split.choices) for _ in cs]
    if kind == "chess":
        return [f"{p} {max(cs, key=len)}" if cs else p for p, cs in zip(split.texts, split.choices)], None
    return split.texts, None


def _too_long_for(
    entry: dict, read: dict[str, tuple[list[str], list[int] | None]], digests: dict[str, str]
) -> dict[str, set[int]]:
    """too_long on every split for one model (its tokenizer fingerprinted once), as example positions,
    saying why this job needs another model's tokenizer when that one cannot load."""
    try:
        fingerprint = tokenizer_fingerprint(entry)
        out = {}
        for name, (texts, owners) in read.items():
            long = too_long(entry, texts, fingerprint, digests[name])
            out[name] = long if owners is None else {owners[j] for j in long}
        return out
    except W2SError as exc:
        raise W2SError(
            f'[data] long_inputs = "drop" leaves out the inputs too long for ANY model of the recipe, '
            f"so every job needs every model's tokenizer, and model '{entry.get('name', entry['path'])}' "
            f'failed: {exc} Fix or remove that model, or set long_inputs = "truncate_left" or '
            '"truncate_right" in [data] so each job needs only its own model.'
        ) from exc


def drop_too_long(
    length_filter: list[dict], splits: dict[str, Split], kind: str = "classify"
) -> tuple[dict[str, Split], dict[str, int]]:
    """Each split without the examples too long for any model of `length_filter`, and how many went.

    `kind` is `[data] kind`: it says which texts a model reads of an example (`read_texts`).
    """
    read = {name: read_texts(split, kind) for name, split in splits.items()}
    digests = {name: texts_digest(texts) for name, (texts, _) in read.items()}  # once, not once per model
    per_model = [_too_long_for(entry, read, digests) for entry in length_filter]
    kept, dropped = {}, {}
    for name, split in splits.items():
        out = set().union(*(positions[name] for positions in per_model))
        kept[name] = split.keep([i for i in range(len(split.texts)) if i not in out])
        dropped[name] = len(out)
    return kept, dropped


def drop_long_inputs(job: dict, splits: dict[str, Split]) -> tuple[dict[str, Split], dict[str, int]]:
    """The job's splits after `[data] long_inputs`, and result.json's `n_dropped_<split>` figures.

    Outside drop mode the splits are returned as they are, with no figures (nothing is dropped).
    """
    if long_inputs(job) != "drop":
        return splits, {}
    kept, dropped = drop_too_long(job["length_filter"], splits, job["data"].get("kind", "classify"))
    for name in (job["train_split"], "test"):
        if not kept[name].texts:
            raise InputError(
                f"Every example of split {name} is longer than some model's max_length, so the job has nothing "
                f"to {'test on' if name == 'test' else 'train on'}. Raise the models' max_length in the recipe, "
                'or set [data] long_inputs = "truncate_left" (or "truncate_right") to keep long inputs cut.'
            )
    return kept, {Result.n_dropped(name): n for name, n in dropped.items()}


# --- predictions by split position ----------------------------------------------------------


def aligned_probs(split_predictions: dict, split: Split, where: str, key: str = "probs") -> list:
    """A predictions.json entry's probabilities (or, with `key` "dists", distributions) for exactly the rows
    `split` holds, matched by drawn position.

    Entries without an "index" (no input dropped) cover the whole split in order; they come back as
    they are when this split is whole too, so the caller's length check reports a stale upstream.
    """
    if split_predictions.get("index") is None and split.positions is None:
        return split_predictions[key]
    by_position = dict(zip(prediction_index(split_predictions), split_predictions[key]))
    missing = [i for i in split.index if i not in by_position]
    if missing:
        raise W2SError(
            f"{where} has no prediction for {len(missing)} of the {len(split.index)} examples this job "
            f"keeps (e.g. position {missing[0]}): it was run with other models or another "
            "[data] long_inputs. Run it again (`w2s run --force`) before this job."
        )
    return [by_position[i] for i in split.index]


def align_upstream(upstream: dict | None, splits: dict[str, Split], job: dict) -> dict | None:
    """The upstream job's predictions with each split's probabilities (and distributions) matched to this job's rows."""
    if upstream is None:
        return None
    where = f"the upstream job {job['labels']['from'][:10]}'s predictions.json"
    out = {}
    for name, p in upstream.items():
        if name not in splits:
            out[name] = p
            continue
        keys = ("probs", "dists") if p.get("dists") is not None else ("probs",)
        out[name] = {**p, **{key: aligned_probs(p, splits[name], f"{where} ({name})", key) for key in keys}}
    return out


def indexed(predictions: dict, splits: dict[str, Split]) -> dict:
    """predictions.json with each split's drawn positions ("index") where long inputs were dropped from it,
    so a downstream job and the store match every probability to its example (`jobdir.prediction_index`)."""
    return {
        name: p if splits[name].positions is None else {**p, "index": splits[name].index}
        for name, p in predictions.items()
    }


def count_dropped(data: dict, seeds: Sequence[int], length_filter: list[dict]) -> dict:
    """For the dry run: per seed, each split's drawn size and how many examples drop mode leaves out."""
    out = {}
    for seed in seeds:
        splits = make_splits(data, seed)
        _, dropped = drop_too_long(length_filter, splits, data.get("kind", "classify"))
        out[str(seed)] = {name: {"n": len(splits[name].texts), "dropped": dropped[name]} for name in SPLITS}
    return out


def main() -> int:
    """`python -m w2s_core.training.lengths` < {"data", "seeds", "length_filter"}: prints {"seeds": ...}
    or {"error": "..."} (exit 1) when a tokenizer or the data cannot be loaded (e.g. an offline hub)."""
    try:
        request = json.load(sys.stdin)
        counts = count_dropped(request["data"], request["seeds"], request["length_filter"])
    except Exception as exc:  # the dry run reports any failure as "unknown" instead of failing
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        # our own errors already say what went wrong and what to do; others need their type to make sense
        print(json.dumps({"error": first if isinstance(exc, W2SError) else f"{type(exc).__name__}: {first}"}))
        return 1
    print(json.dumps({"seeds": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
