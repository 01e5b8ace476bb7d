"""The tags and run_notes tables: labels a user puts on runs, jobs and recipes, and notes on runs.

`w2s tag/untag/note` write them (through the supervisor while one holds the writer lock); `w2s runs`,
`w2s show`, the History screen and the exports read them. A tag names a run by its id (as text), a
job by its full hash and a recipe by its hash. Tags are single words, so they fit a table cell, a
search (`tag:NAME`) and a comma-separated list without quoting.
"""

from __future__ import annotations

import time

from w2s_core.errors import InputError
from w2s_core.store.connection import StoreBase, sqlite_errors
from w2s_core.store.rows import NoteRow, TagRow

TAG_KINDS = ("run", "job", "recipe")
MAX_TAG = 64
TAG_RULE = f"a tag is one word: not empty, no spaces or commas, at most {MAX_TAG} characters"

# The tags that apply to job `j` of a query: its own, its run's and those of every recipe that planned it.
_APPLIES_TO_JOB = (
    "((t.kind = 'job' AND t.target = j.hash) OR (t.kind = 'run' AND t.target = CAST(j.run_id AS TEXT)) "
    "OR (t.kind = 'recipe' AND (t.target = j.recipe_hash "
    "OR t.target IN (SELECT rj.recipe_hash FROM recipe_jobs rj WHERE rj.job_hash = j.hash))))"
)
# A column of a job query: those tags, comma-separated (tags hold no commas), NULL when none.
JOB_TAGS_SQL = f"(SELECT group_concat(DISTINCT t.tag) FROM tags t WHERE {_APPLIES_TO_JOB}) AS tags"
TAG_PREFIX = "tag:"  # a search word `tag:NAME` keeps the jobs carrying NAME (queries.job_rows)
# A WHERE clause (one `?` parameter: the tag) keeping the jobs of a query (alias `j`) that carry the tag.
JOB_TAG_CLAUSE = f"EXISTS (SELECT 1 FROM tags t WHERE t.tag = ? AND {_APPLIES_TO_JOB})"


def check_tag(tag: str) -> str:
    """`tag` if it is a valid tag; InputError saying the rule otherwise."""
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or "," in tag or any(c.isspace() for c in tag):
        raise InputError(f"{tag!r} is not a valid tag: {TAG_RULE}")
    return tag


def _check_kind(kind: str) -> str:
    if kind not in TAG_KINDS:
        raise InputError(f"tag kind {kind!r} must be one of {', '.join(TAG_KINDS)}")
    return kind


class Annotations(StoreBase):
    """Adding and removing tags, adding notes, and reading both back."""

    def _require_target(self, kind: str, target: str) -> None:
        table, column, value = {
            "run": ("runs", "id", int(target) if str(target).isdigit() else -1),
            "job": ("jobs", "hash", target),
            "recipe": ("recipes", "hash", target),
        }[kind]
        if self.db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", [value]).fetchone() is None:
            raise InputError(f"there is no {kind} {target!r} in the w2s results database {self.path}")

    @sqlite_errors
    def job_hashes(self, prefix: str) -> list[str]:
        """The full hashes of the jobs whose hash starts with `prefix` (what `w2s tag PREFIX` may mean)."""
        rows = self.db.execute(
            "SELECT hash FROM jobs WHERE substr(hash, 1, ?) = ? ORDER BY hash", [len(prefix), prefix]
        )
        return [r[0] for r in rows]

    @sqlite_errors
    def add_tags(self, kind: str, target: str, tags: list[str]) -> int:
        """Tag the run (id), job (full hash) or recipe (hash); returns how many tags it did not carry yet."""
        _check_kind(kind)
        tags = [check_tag(t) for t in tags]
        self._require_target(kind, str(target))
        now = time.time()
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO tags (kind, target, tag, created_at) VALUES (?, ?, ?, ?)",
                [(kind, str(target), tag, now) for tag in dict.fromkeys(tags)],
            )
            return conn.total_changes - before

    @sqlite_errors
    def remove_tags(self, kind: str, target: str, tags: list[str]) -> int:
        """Remove tags (idempotent: a tag it does not carry is no error); returns how many were there."""
        _check_kind(kind)
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM tags WHERE kind = ? AND target = ? AND tag = ?",
                [(kind, str(target), tag) for tag in dict.fromkeys(tags)],
            )
            return conn.total_changes - before

    @sqlite_errors
    def tags(self, kind: str | None = None, target: str | None = None) -> list[TagRow]:
        """Every tag (of one kind, of one target), oldest first."""
        clauses, params = [], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(_check_kind(kind))
        if target is not None:
            clauses.append("target = ?")
            params.append(str(target))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT kind, target, tag, created_at FROM tags{where} ORDER BY created_at, kind, target, tag"
        return list(self.db.query(sql, params))  # type: ignore[arg-type]

    @sqlite_errors
    def tags_of(self, **targets: str | int | None) -> dict[str, list[str]]:
        """{kind: sorted tags} for the targets given by kind (`tags_of(run=3, recipe=h)`; None: no such target)."""
        return {
            kind: sorted(r["tag"] for r in self.tags(kind, str(target))) if target is not None else []
            for kind, target in targets.items()
        }

    @sqlite_errors
    def add_note(self, run_id: int, text: str) -> int:
        """Add a note to a run; returns the note's id."""
        text = (text or "").strip()
        if not text:
            raise InputError('a note needs some text: w2s note RUN "what you want to remember"')
        self._require_target("run", str(run_id))
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO run_notes (run_id, text, created_at) VALUES (?, ?, ?)", (int(run_id), text, time.time())
            )
        return int(cursor.lastrowid)

    @sqlite_errors
    def notes(self, run_id: int | None = None) -> list[NoteRow]:
        """Every note (of one run), oldest first."""
        where, params = ("", []) if run_id is None else (" WHERE run_id = ?", [int(run_id)])
        sql = f"SELECT id, run_id, text, created_at FROM run_notes{where} ORDER BY id"
        return list(self.db.query(sql, params))  # type: ignore[arg-type]
