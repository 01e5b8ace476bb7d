"""Prompting formats: how a classify example is shown to a causal LM, and the word for each class.

A prompting job scores example n as the next-token log-probabilities of the label words after
`render(fmt, text)` (zero-shot, or after k rendered demonstrations; w2s_core.training.prompt). Every
registered classify dataset has a format: its own below, or GENERIC ("Answer: No/Yes" after the text,
which fits the EleutherAI/w2s formatters that end in a yes/no question). The paper (Fig. 9a) prompts
with per-task templates that were not released; these follow the datasets' own wording. A recipe's
`[data] template` / `label_words` replace either part; a local file has no format of its own, so it
needs `label_words` (its template defaults to GENERIC's). Label words start with a space because a
BPE tokenizer (GPT-2, Qwen) reads " Yes" after "Answer:" as one token; word-level tiny tokenizers
drop it. Templates are filled by `str.replace("{text}", ...)`, never `str.format`: recipes are data.
"""

from __future__ import annotations

from dataclasses import dataclass

from w2s_core.data.registry import DATASETS, class_count
from w2s_core.errors import InputError


@dataclass(frozen=True)
class PromptFormat:
    """`template` holds "{text}" where an example's text goes; `label_words[k]` is class k's continuation."""

    template: str
    label_words: tuple[str, ...]


NO_YES = (" No", " Yes")
SENTIMENT = (" negative", " positive")
GENERIC = PromptFormat("{text}\nAnswer:", NO_YES)
_CORRECT = PromptFormat("{text}\nIs the answer correct? Answer:", NO_YES)  # answer-vs-distractor rows
_REVIEW = PromptFormat("Review: {text}\nSentiment:", SENTIMENT)

FORMATS: dict[str, PromptFormat] = {
    # the tiny models' word vocabulary (synthetic.SYNTHETIC_VOCAB) holds "overall", "it", "was", "bad", "good"
    "synthetic": PromptFormat("{text} overall it was", (" bad", " good")),
    "movie-snippets": _REVIEW,
    "amazon_polarity": _REVIEW,
    "sst2": _REVIEW,
    "twitter-sentiment": PromptFormat("Tweet: {text}\nSentiment:", SENTIMENT),
    "sciq": _CORRECT,
    "sciq_with_support": _CORRECT,
    "cosmos_qa": _CORRECT,
    "dream": _CORRECT,
    "openbookqa": _CORRECT,
    "piqa": _CORRECT,
    "boolq": GENERIC,  # "Passage: ...\nQuestion: ..." then " Yes" (label 1) or " No"
    "cola": PromptFormat("Sentence: {text}\nIs this sentence grammatical? Answer:", NO_YES),
    "anthropic_hh": PromptFormat("{text}\n\nIs the assistant's last reply the one people preferred? Answer:", NO_YES),
    # the ETHICS formatters already end in "A:" after their question
    "ethics-deontology": PromptFormat("{text}", NO_YES),
    "ethics-justice": PromptFormat("{text}", NO_YES),
    "ethics-virtue": PromptFormat("{text}", NO_YES),
}


def render(fmt: PromptFormat, text: str) -> str:
    """The template with the example's text in place of "{text}"."""
    return fmt.template.replace("{text}", text)


def _own_format(cfg: dict) -> PromptFormat | None:
    name = cfg.get("name")
    if name in DATASETS and "classify" in DATASETS[name].kinds:
        return FORMATS.get(name, GENERIC)
    return None


def prompt_format(cfg: dict) -> PromptFormat:
    """The [data] table's prompting format: the recipe's template/label_words where given, else the
    registered dataset's own; label_words must have one distinct, non-empty word per class."""
    kind = cfg.get("kind", "classify")
    if kind != "classify":
        raise InputError(
            f"Prompting needs classify data, but the recipe's [data] kind is {kind!r}: pairwise and chess "
            "tasks have no label words to prompt with. Remove the [[prompt]] tables or use a classify dataset."
        )
    own = _own_format(cfg)
    template = cfg.get("template") or (own.template if own else GENERIC.template)
    if "{text}" not in template:
        raise InputError(f'[data] template = {template!r} has no "{{text}}" where the example\'s text goes.')
    words = cfg.get("label_words")
    if words is None:
        if own is None:
            raise InputError(
                f"[data] label_words is needed to prompt on {cfg.get('path') or cfg.get('name')!r}: the data has no "
                'prompt format of its own. Give one word per class, in label order, e.g. label_words = [" No", " Yes"].'
            )
        words = own.label_words
    words = tuple(words)
    n_classes = class_count(cfg)
    if len(words) != n_classes:
        raise InputError(
            f"[data] label_words has {len(words)} word(s) ({', '.join(map(repr, words))}), but the data has "
            f"{n_classes} classes: give exactly one per class, in label order."
        )
    if len(set(words)) != len(words) or not all(w.strip() for w in words):
        raise InputError(f"[data] label_words must be distinct, non-blank words, got {list(words)!r}.")
    return PromptFormat(template, words)
