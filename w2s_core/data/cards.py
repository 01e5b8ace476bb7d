"""What the Hub's dataset cards say about each registry dataset: licence and rows per split.

Written from the dataset cards (the README metadata of each Hub repo), not measured here: this
machine cannot reach the Hub. `w2s datasets` prints these beside whether the dataset is in the
local Hugging Face caches; None means the card gives no figure.
"""

from __future__ import annotations

# name -> (licence, {split: rows})
CARDS: dict[str, tuple[str | None, dict[str, int] | None]] = {
    "sciq": ("cc-by-nc-3.0", {"train": 11679, "validation": 1000, "test": 1000}),
    "boolq": ("cc-by-sa-3.0", {"train": 9427, "validation": 3270}),
    "amazon_polarity": ("apache-2.0", {"train": 3600000, "test": 400000}),
    "cosmos_qa": ("cc-by-4.0", {"train": 25262, "validation": 2985, "test": 6963}),
    "anthropic_hh": ("mit", {"train": 160800, "test": 8552}),
    "anli-r2": ("cc-by-nc-4.0", {"train_r2": 45460, "dev_r2": 1000, "test_r2": 1000}),
    "cola": (None, {"train": 8551, "validation": 1043, "test": 1063}),
    "dream": (None, {"train": 6116, "validation": 2040, "test": 2041}),
    "ethics-deontology": ("mit", {"train": 18164, "test": 3596}),
    "ethics-justice": ("mit", {"train": 21791, "test": 2704}),
    "ethics-virtue": ("mit", {"train": 28245, "test": 4975}),
    "ethics-utilitarianism": ("mit", {"train": 13737, "test": 4807}),
    "mc_taco": (None, {"validation": 3783, "test": 9442}),
    "hellaswag": ("mit", {"train": 39905, "validation": 10042, "test": 10003}),
    "multirc": (None, {"train": 27243, "validation": 4848, "test": 9693}),
    "openbookqa": ("unknown", {"train": 4957, "validation": 500, "test": 500}),
    "paws": ("other", {"train": 49401, "validation": 8000, "test": 8000}),
    "piqa": ("afl-3.0", {"train": 16113, "validation": 1838, "test": 3084}),
    "quail": ("cc-by-nc-sa-4.0", {"train": 10246, "validation": 2164, "challenge": 556}),
    "quartz": ("cc-by-4.0", {"train": 2696, "validation": 384, "test": 784}),
    "social_i_qa": (None, {"train": 33410, "validation": 1954}),
    "sst2": (None, {"train": 67349, "validation": 872, "test": 1821}),
    "wic": ("cc-by-nc-4.0", {"train": 5428, "validation": 638, "test": 1400}),
    "twitter-sentiment": (None, None),
    "sciq_with_support": ("cc-by-nc-3.0", {"train": 11679, "validation": 1000, "test": 1000}),
    "synthetic": ("generated", None),
    "movie-snippets": ("mit", {"all": 10605}),
    "synthetic-pairs": ("generated", None),
    "movie-pairs": ("mit", None),  # pairs of the movie snippets above
    "mate-in-one": ("generated", None),  # random legal play with python-chess (GPL-3.0 library, not data)
}


def card(name: str) -> tuple[str | None, dict[str, int] | None]:
    return CARDS.get(name, (None, None))
