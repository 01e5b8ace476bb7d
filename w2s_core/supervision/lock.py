"""The single-writer lock of a results directory: only the process holding it writes w2s.db.

An advisory `flock` on `w2s.lock`: the kernel drops it when the holder dies, even by kill -9,
so a crash never leaves a stale lock. Readers never take it (WAL lets them read meanwhile).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from w2s_core.errors import InputError, W2SError

LOCK_NAME = "w2s.lock"


class WriterLock:
    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_NAME
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; False if another process holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(
                f"Cannot create the lock file {self.path}: {exc.strerror or exc}. "
                "Pass a results directory you can write to."
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        self._fd = fd
        return True

    def acquire(self, what: str) -> WriterLock:
        """Take the lock or explain who holds it (a second writer is refused, never queued silently)."""
        if not self.try_acquire():
            holder = self.holder()
            who = f"process {holder['pid']}" if holder else "another process"
            raise W2SError(
                f"Cannot {what}: {who} is already writing to {self.path.parent} (it holds "
                f"{self.path}). Use `w2s run --detach RECIPE` to add work to its queue, "
                "`w2s queue` to see it, or wait until it finishes."
            )
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holder(self) -> dict | None:
        """Who holds the lock now ({pid, since}), or None when nobody does."""
        if self._fd is not None:
            return json.loads(self.path.read_text())
        probe = WriterLock(self.path.parent)
        try:
            if probe.try_acquire():
                probe.release()
                return None
        except W2SError:
            return None
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"pid": None, "since": None}

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
