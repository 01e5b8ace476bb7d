"""Requests to a supervisor: the typed messages other processes drop into a results folder's `inbox/`.

While a supervisor holds the writer lock it is the only writer of the store, so `w2s run --detach`,
`w2s retry`, `w2s cancel` and `w2s tag/untag/note` ask it instead, one JSON file per request:

    inbox/<id>.json    {"kind": "submit" | "cancel" | "retry" | "annotate", "id": ..., <the fields of that class>}

Ids sort by time, so requests apply in the order they were made. A file is written atomically
(temp file + rename), so the supervisor never reads half of one. A file that is not a request
(bad JSON, an unknown kind, a missing or mistyped field) raises `BadRequest`; the supervisor reports
it in supervisor.log and sets the file aside as `<id>.rejected`. Files written before requests had
a `kind` name it `action`; they read the same.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from w2s_core.jobdir import read_json, write_json

INBOX = "inbox"
REJECTED_SUFFIX = ".rejected"


def new_request_id() -> str:
    """Sorts by time, unique across processes: requests apply in the order they were made."""
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


@dataclass
class Submit:
    """Plan a recipe, as its text was when submitted, and queue every job of it not done yet."""

    kind: ClassVar[str] = "submit"
    recipe_path: str
    recipe_text: str
    argv: list
    provenance: dict
    code: str | None = None  # the code snapshot queued jobs run (folder relative to the results folder)
    cwd: str | None = None  # the submitter's folder: relative model and data paths mean that folder
    force: bool = False  # run jobs again even if done
    parallel: int = 1  # CPU slots a supervisor taking over this work uses
    launch: dict = field(default_factory=dict)  # [launch] keys the command line overrides (`--executor`)
    id: str = field(default_factory=new_request_id)


@dataclass
class Cancel:
    """Cancel queued jobs and kill running ones (their whole process trees)."""

    kind: ClassVar[str] = "cancel"
    jobs: list
    id: str = field(default_factory=new_request_id)


@dataclass
class Retry:
    """Queue failed, cancelled or skipped jobs again, as a new run."""

    kind: ClassVar[str] = "retry"
    jobs: list
    argv: list
    provenance: dict
    code: str | None = None
    cwd: str | None = None
    id: str = field(default_factory=new_request_id)


@dataclass
class Annotate:
    """Tag or untag a run, job or recipe, or add a note to a run (`w2s tag`, `untag`, `note`; issue 13)."""

    kind: ClassVar[str] = "annotate"
    op: str  # "tag", "untag" or "note"
    target_kind: str  # "run", "job" or "recipe"
    target: str  # the run id, the full job hash or the recipe hash
    tags: list = field(default_factory=list)
    text: str = ""  # the note
    id: str = field(default_factory=new_request_id)


Request = Submit | Cancel | Retry | Annotate
KINDS: dict[str, type] = {cls.kind: cls for cls in (Submit, Cancel, Retry, Annotate)}

# What each field may hold, for every kind (JSON gives no more than this to check).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "recipe_path": (str,),
    "recipe_text": (str,),
    "argv": (list,),
    "provenance": (dict,),
    "code": (str, type(None)),
    "cwd": (str, type(None)),
    "force": (bool,),
    "parallel": (int,),
    "jobs": (list,),
    "launch": (dict,),
    "op": (str,),
    "target_kind": (str,),
    "target": (str,),
    "tags": (list,),
    "text": (str,),
}


class BadRequest(ValueError):
    """A request file that cannot be applied as it is: the message says what is wrong with it."""


def to_json(request: Request) -> dict:
    return {"kind": request.kind, **dataclasses.asdict(request)}


def from_json(data: Any) -> Request:
    """The request a file's JSON holds; BadRequest naming what is wrong otherwise."""
    if not isinstance(data, dict):
        raise BadRequest(f"is a JSON {type(data).__name__}, not an object with a 'kind'")
    kind = data.get("kind", data.get("action"))  # "action": files written before requests were typed
    cls = KINDS.get(kind)
    if cls is None:
        raise BadRequest(f"has kind {kind!r}; a request is one of {sorted(KINDS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    values = {k: v for k, v in data.items() if k not in ("kind", "action")}
    if missing := sorted(required - set(values)):
        raise BadRequest(f"({kind}) lacks {', '.join(missing)}")
    if unknown := sorted(set(values) - names):
        raise BadRequest(
            f"({kind}) has fields {', '.join(unknown)} that a {kind} request does not take; "
            f"it takes {', '.join(sorted(names))}"
        )
    for name, value in values.items():
        if not isinstance(value, _FIELD_TYPES[name]) or (name == "parallel" and isinstance(value, bool)):
            raise BadRequest(f"({kind}) has {name} = {value!r}, which is not a {_FIELD_TYPES[name][0].__name__}")
    if not all(isinstance(h, str) for h in values.get("jobs", [])):
        raise BadRequest(f"({kind}) has jobs that are not all job hashes (strings)")
    return cls(**values)


def read(path: Path) -> Request:
    """The request in one inbox file; BadRequest if it is unreadable or not a request."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise BadRequest(f"cannot be read as JSON: {exc}") from exc
    return from_json(data)


def post(root: Path, request: Request) -> str:
    """Queue a request for the supervisor of `root` (written atomically); returns its id."""
    inbox = Path(root) / INBOX
    inbox.mkdir(parents=True, exist_ok=True)
    write_json(inbox / f"{request.id}.json", to_json(request))
    return request.id


def pending(root: Path) -> list[Path]:
    """Request files not applied yet, oldest first."""
    return sorted((Path(root) / INBOX).glob("*.json"))


def is_pending(root: Path, request_id: str) -> bool:
    return (Path(root) / INBOX / f"{request_id}.json").exists()


def rejected(root: Path) -> list[Path]:
    """Request files the supervisor could not apply (the reason is in its log), oldest first."""
    return sorted((Path(root) / INBOX).glob(f"*{REJECTED_SUFFIX}"))


def set_aside(path: Path) -> Path:
    """Move a request that could not be applied out of the way, so it is neither applied nor retried."""
    target = path.with_suffix(REJECTED_SUFFIX)
    try:
        path.rename(target)
    except FileNotFoundError:  # already gone: nothing left to set aside
        pass
    return target
