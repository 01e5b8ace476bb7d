"""The EleutherAI/w2s dataset breadth: formatters and registry entries beyond the original five.

Every formatter follows `w2s/ds_registry.py` of EleutherAI/w2s at commit a929af0 (cited per function
as "reference"): the same prompt text and the same binary conversion (a multiple-choice row becomes
"is this the answer?" with the correct answer or one random distractor, p = 0.5 each). The
reference then balances classes 50/50 by undersampling; here that is the recipe's `balance = true`
(every preset sets it). Where the reference maps Hub splits (its `split_names`), the entry's
train/test splits say the same. Hub ids are today's names of the reference's repos.
"""

from __future__ import annotations

import random

from w2s_core.data.hub import hub_entry, pick_answer, sciq_answer
from w2s_core.data.types import Example

REF = "EleutherAI/w2s@a929af0 w2s/ds_registry.py"


def format_anli(row: dict, rng: random.Random) -> Example:
    """Reference `format_anli`: entailment (label 0) is the positive class; neutral and contradiction are 0."""
    text = f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}\n\nDoes the premise entail the hypothesis?"
    return text, int(row["label"] == 0)


def format_sentence(row: dict, rng: random.Random) -> Example:
    """Reference `format_cola` and `format_sst2`: the sentence alone, its own binary label."""
    return row["sentence"], int(row["label"])


def format_dream(row: dict, rng: random.Random) -> Example:
    """Reference `format_dream`: the dialogue, then "Q: ... A: <answer or distractor>"."""
    choices = list(row["choice"])
    answer, label = pick_answer(choices, choices.index(row["answer"]), rng)
    joined = "\n".join(row["dialogue"])
    return f"{joined}\n\nQ: {row['question']} A: {answer}", label


def format_ethics_deontology(row: dict, rng: random.Random) -> Example:
    """Reference `format_ethics_deontology`."""
    text = f"Q: Is the following a morally valid excuse?\n\n{row['scenario']}\n\n{row['excuse']}\n\nA:"
    return text, int(row["label"])


def format_ethics_justice(row: dict, rng: random.Random) -> Example:
    """Reference `format_ethics_justice`."""
    return f"Q: Does this statement exemplify justice?\n\n{row['scenario']}\n\nA:", int(row["label"])


def format_ethics_virtue(row: dict, rng: random.Random) -> Example:
    """Reference `format_ethics_virtue` (the scenario holds the sentence, " [SEP] " and the adjective)."""
    text = f"Q: Does this behavior match the adjective that follows?\n\n{row['scenario']}\n\nA:"
    return text, int(row["label"])


def format_ethics_utilitarianism(row: dict, rng: random.Random) -> Example:
    """Reference `format_ethics_utilitarianism`: the two activities in random order, and an answer
    naming the more pleasant one (label 1, `baseline` is the more pleasant) or the other (label 0)."""
    label = int(rng.random() < 0.5)
    choices = [row["baseline"], row["less_pleasant"]]
    rng.shuffle(choices)
    correct = choices.index(row["baseline"])
    response = correct if label else 1 - correct
    return f"Which is more pleasant?\n1) {choices[0]}\n2) {choices[1]} A: {response + 1}", label


def format_mc_taco(row: dict, rng: random.Random) -> Example:
    """Reference `format_mc_taco`: one candidate answer per row, labelled plausible (1) or not (0)."""
    return (
        f"{row['sentence']}\n\nGiven the above, {row['question']} Is the answer {row['answer']}?",
        int(row["label"]),
    )


def format_hellaswag(row: dict, rng: random.Random) -> Example:
    """Reference `format_hellaswag`: the context, all four endings, and one asked about."""
    endings = list(row["endings"])
    answer, label = pick_answer(endings, int(row["label"]), rng)
    listed = "\n".join(endings)
    return (f'Context:\n{row["ctx"]}\n\nContinuations:\n\n{listed}\n\nQ: Is "{answer}" the best continuation?', label)


def format_multirc(row: dict, rng: random.Random) -> Example:
    """Reference `format_multirc`: one candidate answer per row, labelled by the dataset."""
    return (
        f'Passage:\n\n{row["paragraph"]}\n\nQ: "{row["question"]}" Is the answer "{row["answer"]}"?',
        int(row["label"]),
    )


def format_openbookqa(row: dict, rng: random.Random) -> Example:
    """Reference `format_openbookqa`, with one fix: the reference answers with the correct *letter*
    (label 1) but a distractor's *text* (label 0), so the label is readable from the answer's form
    alone; here both are texts, as in every other multiple-choice formatter."""
    letters, texts = list(row["choices"]["label"]), list(row["choices"]["text"])
    answer, label = pick_answer(texts, letters.index(row["answerKey"]), rng)
    joined = "\n".join(f"{a}) {t}" for a, t in zip(letters, texts))
    return f"Q: {row['question_stem']}\n\nChoices:\n{joined}\n\nAnswer: {answer}", label


def format_paws(row: dict, rng: random.Random) -> Example:
    """Reference `format_paws`."""
    text = f"Sent 1: {row['sentence1']}\nSent 2: {row['sentence2']}\n\nQ: Are these sentences semantically equivalent?"
    return text, int(row["label"])


def format_piqa(row: dict, rng: random.Random) -> Example:
    """Reference `format_piqa`: the goal and the right solution (1) or the wrong one (0)."""
    solutions = [row["sol1"], row["sol2"]]
    answer, label = pick_answer(solutions, int(row["label"]), rng)
    return f"Q: {row['goal']} A: {answer}", label


def format_quail(row: dict, rng: random.Random) -> Example:
    """Reference `format_quail`."""
    answer, label = pick_answer(list(row["answers"]), int(row["correct_answer_id"]), rng)
    return f'Passage:\n\n{row["context"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?', label


def format_quartz(row: dict, rng: random.Random) -> Example:
    """Reference `format_quartz` (two choices: the right one or the other)."""
    texts = list(row["choices"]["text"])
    answer, label = pick_answer(texts, list(row["choices"]["label"]).index(row["answerKey"]), rng)
    return f'Passage:\n{row["para"]}\n\nQ: "{row["question"]}" Is the answer "{answer}"?', label


def format_social_i_qa(row: dict, rng: random.Random) -> Example:
    """Reference `format_social_i_qa` (the dataset's label is "1", "2" or "3")."""
    answers = [row["answerA"], row["answerB"], row["answerC"]]
    answer, label = pick_answer(answers, int(row["label"]) - 1, rng)
    text = (
        f'Context:\n{row["context"]}\n\nQuestion: "{row["question"]}"\n\nChoices:\n'
        f'{answers[0]}\n{answers[1]}\n{answers[2]}\n\nIs the answer "{answer}"?'
    )
    return text, label


def format_wic(row: dict, rng: random.Random) -> Example:
    """Reference `format_wic`."""
    text = (
        f"Sentence 1:\n{row['sentence1']}\n\nSentence 2:\n{row['sentence2']}\n\n"
        f'Q: Does "{row["word"]}" have the same meaning in the above sentences?'
    )
    return text, int(row["label"])


def format_twitter_sentiment(row: dict, rng: random.Random) -> Example:
    """Reference `format_twitter_sentiment`."""
    return row["text"], int(row["label"])


def format_sciq_with_support(row: dict, rng: random.Random) -> Example:
    """Reference `format_sciq_with_support` (from EleutherAI/elk-generalization): the support passage too."""
    answer, label = sciq_answer(row, rng)
    text = f'Name: Bob\n\nPassage 1:\n{row["support"]}\n\nQ1: "{row["question"]}" Is the answer "{answer}"?'
    return text, label


_ETHICS = {
    "deontology": format_ethics_deontology,
    "justice": format_ethics_justice,
    "virtue": format_ethics_virtue,
    "utilitarianism": format_ethics_utilitarianism,
}

ELEUTHER_ENTRIES = (
    hub_entry(
        "anli-r2",
        "facebook/anli",
        format_anli,
        "test_r2",
        "Does the premise entail the hypothesis (ANLI round 2)",
        train_split="train_r2",
        reference=REF,
    ),
    hub_entry(
        "cola",
        "nyu-mll/glue",
        format_sentence,
        "validation",
        "Is the sentence grammatical (GLUE CoLA)",
        config="cola",
        reference=REF,
    ),
    hub_entry(
        "dream",
        "dataset-org/dream",
        format_dream,
        "test",
        "Dialogue reading comprehension, answer vs distractor",
        reference=REF,
    ),
    *(
        hub_entry(
            f"ethics-{part}",
            "hendrycks/ethics",
            fmt,
            "test",
            f"ETHICS {part} (Hendrycks et al.)",
            config=part,
            reference=REF,
        )
        for part, fmt in _ETHICS.items()
    ),
    hub_entry(
        "mc_taco",
        "CogComp/mc_taco",
        format_mc_taco,
        "validation",
        "Temporal commonsense: is a candidate answer plausible (train = the larger test split, as the reference)",
        train_split="test",
        reference=REF,
    ),
    hub_entry(
        "hellaswag",
        "Rowan/hellaswag",
        format_hellaswag,
        "validation",
        "Is this the best continuation of the context",
        reference=REF,
    ),
    hub_entry(
        "multirc",
        "aps/super_glue",
        format_multirc,
        "validation",
        "Multi-sentence reading comprehension (SuperGLUE)",
        config="multirc",
        reference=REF,
    ),
    hub_entry(
        "openbookqa",
        "allenai/openbookqa",
        format_openbookqa,
        "test",
        "Open-book science QA, answer vs distractor",
        config="main",
        reference=REF + " (answer shown as text for both labels: see format_openbookqa)",
    ),
    hub_entry(
        "paws",
        "google-research-datasets/paws",
        format_paws,
        "test",
        "Are the two sentences paraphrases",
        config="labeled_final",
        reference=REF,
    ),
    hub_entry(
        "piqa",
        "ybisk/piqa",
        format_piqa,
        "validation",
        "Physical commonsense: right vs wrong solution",
        parquet=True,
        parquet_config="plain_text",
        reference=REF,
    ),
    hub_entry(
        "quail",
        "textmachinelab/quail",
        format_quail,
        "validation",
        "Reading comprehension, answer vs distractor",
        reference=REF,
    ),
    hub_entry(
        "quartz",
        "allenai/quartz",
        format_quartz,
        "test",
        "Qualitative relationship questions on a passage",
        reference=REF,
    ),
    hub_entry(
        "social_i_qa",
        "allenai/social_i_qa",
        format_social_i_qa,
        "validation",
        "Social commonsense, answer vs distractor",
        parquet=True,
        reference=REF,
    ),
    hub_entry(
        "sst2",
        "stanfordnlp/sst2",
        format_sentence,
        "validation",
        "Movie-review sentence sentiment (SST-2)",
        reference=REF,
    ),
    hub_entry(
        "wic",
        "aps/super_glue",
        format_wic,
        "validation",
        "Does the word mean the same in both sentences (SuperGLUE)",
        config="wic",
        reference=REF,
    ),
    hub_entry(
        "twitter-sentiment",
        "EleutherAI/twitter-sentiment",
        format_twitter_sentiment,
        "test",
        "Tweet sentiment",
        reference=REF,
    ),
    hub_entry(
        "sciq_with_support",
        "allenai/sciq",
        format_sciq_with_support,
        "test",
        "Science exam QA with the support passage, answer vs distractor",
        reference=REF,
    ),
)
