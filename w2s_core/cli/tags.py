"""`w2s tag`, `w2s untag` and `w2s note`: labels on what is recorded, kept in the store and exported with it.

`w2s tag TARGET TAG...` labels a run (its id), a job (a hash prefix) or a recipe (its file or name:
every recorded version of that name); `w2s untag` removes tags and says which were not there (removing
is idempotent); `w2s note RUN "text"` adds a note to a run. `w2s runs`, `w2s show` and the History
screen show them.

While a supervisor holds the writer lock it is the only writer of the store (supervision/lock.py), so
these post an Annotate request to it and wait until it is applied (it looks five times a second); with
no supervisor they take the lock and write themselves. Targets and tags are checked here first, against
a read-only store, so the supervisor has nothing to refuse.
"""

from __future__ import annotations

import time
from argparse import Namespace
from pathlib import Path

from w2s_core.cli.targets import annotation_targets
from w2s_core.errors import InputError, W2SError
from w2s_core.store import DB_NAME, Store
from w2s_core.store.annotations import check_tag
from w2s_core.supervision import LOG_NAME
from w2s_core.supervision.handlers import apply_annotation
from w2s_core.supervision.lock import WriterLock
from w2s_core.supervision.requests import INBOX, REJECTED_SUFFIX, Annotate, is_pending, post
from w2s_core.supervision.supervisor import CONFIRM_POLL_S, open_store_if_idle

CONFIRM_TIMEOUT_S = 30.0  # how long to wait for a busy supervisor to apply the request


def _root(args: Namespace) -> Path:
    """The results directory, its database upgraded first when no supervisor has it open (an older
    database opens read-only only once a writer brought it up to date)."""
    root = Path(args.results_dir).expanduser().resolve()
    if (root / DB_NAME).is_file():
        open_store_if_idle(root)
    return root


def record(root: Path, request: Annotate) -> None:
    """Apply `request` here under the writer lock, or through the supervisor holding it (see the module doc)."""
    deadline, posted = time.monotonic() + CONFIRM_TIMEOUT_S, False
    while True:
        lock = WriterLock(root)
        if lock.try_acquire():
            try:
                if posted and not is_pending(root, request.id):  # the supervisor took it before it left
                    break
                with Store.open(root) as store:
                    apply_annotation(store, request)
                if posted:  # a supervisor that left without applying it: it is done here, never twice
                    (root / INBOX / f"{request.id}.json").unlink(missing_ok=True)
                return
            finally:
                lock.release()
        if not posted:
            post(root, request)
            posted = True
        elif not is_pending(root, request.id):
            break
        if time.monotonic() > deadline:
            raise W2SError(
                f"The supervisor of {root} did not apply the {request.op} within {CONFIRM_TIMEOUT_S:g} s; it stays "
                f"queued ({root / INBOX / request.id}.json) and is applied when it next looks. See {root / LOG_NAME}."
            )
        time.sleep(CONFIRM_POLL_S)
    if (root / INBOX / f"{request.id}{REJECTED_SUFFIX}").exists():
        raise W2SError(f"The supervisor of {root} could not apply the {request.op}; {root / LOG_NAME} says why.")


def _tag(args: Namespace, op: str) -> int:
    root = _root(args)
    tags = [check_tag(t) for t in dict.fromkeys(args.tags)]
    with Store.open(root, readonly=True) as store:
        kind, targets, label = annotation_targets(store, args.target)
        carried = {t: {row["tag"] for row in store.tags(kind, t)} for t in targets}
    for target in targets:
        record(root, Annotate(op=op, target_kind=kind, target=target, tags=tags))
    somewhere = [t for t in tags if any(t in carried[x] for x in targets)]  # carried by one version at least
    if op == "tag":
        added = [t for t in tags if any(t not in carried[x] for x in targets)]
        already = [t for t in tags if t not in added]
        print(
            f"tagged {label}: {', '.join(added) or '-'}"
            + (f" ({', '.join(already)}: already there)" if already else "")
        )
        return 0
    missing = [t for t in tags if t not in somewhere]
    if somewhere:
        print(f"untagged {label}: {', '.join(somewhere)}")
    if missing:
        print(f"{label} did not carry: {', '.join(missing)} (nothing to remove)")
    return 0


def cmd_tag(args: Namespace) -> int:
    return _tag(args, "tag")


def cmd_untag(args: Namespace) -> int:
    return _tag(args, "untag")


def cmd_note(args: Namespace) -> int:
    text = args.text.strip()
    if not text:
        raise InputError('w2s note: the note is empty; write it in quotes: w2s note RUN "what to remember"')
    if not args.run.isdigit():
        raise InputError(f"w2s note: {args.run!r} is not a run id (a note is on a run); `w2s runs` lists them")
    root = _root(args)
    with Store.open(root, readonly=True) as store:
        if not any(r["id"] == int(args.run) for r in store.runs()):
            raise InputError(f"w2s note: there is no run {args.run} in {store.path}; `w2s runs` lists them")
    record(root, Annotate(op="note", target_kind="run", target=args.run, text=text))
    print(f"noted run {args.run}: {text}")
    return 0
