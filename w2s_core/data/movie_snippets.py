"""The demo's offline dataset: 10,605 movie-review snippets with human sentiment ratings.

The file ships inside the vaderSentiment sdist (Hutto & Gilbert 2014); `w2s assets install demo`
fetches it and `w2s_core.assets.movie_snippets_file` extracts it once into the cache.
"""

from __future__ import annotations

from w2s_core.assets import movie_snippets_file
from w2s_core.data.types import Example

SOURCE = "vaderSentiment==3.3.2"
VERSION = 1  # bump when the parsing below changes: it is part of the dataset fingerprint


def rated() -> list[tuple[str, float]]:
    """Every snippet in file order as (text, mean human rating in -4..4); the file's lines are
    id, rating, text separated by tabs."""
    out = []
    for line in movie_snippets_file().read_text(encoding="latin-1").splitlines():
        _, rating, text = line.rstrip("\r").split("\t", 2)
        out.append((text.strip(), float(rating)))
    return out


def load(cfg: dict) -> tuple[list[Example], None]:
    """id, mean rating (-4..4), text; label = rating > 0; ratings of exactly 0 dropped. No separate
    test pool: the test set is held out of this one."""
    return [(text, int(rating > 0)) for text, rating in rated() if rating != 0], None


def identity(cfg: dict) -> dict:
    return {"source": SOURCE, "version": VERSION}
