"""An exclusive advisory file lock, for read-modify-writes two processes may attempt at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def exclusive_lock(path: Any) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) for the block: two pulls
    of Label Studio annotations, or two alert-sensor ticks rewriting the outbox, take turns
    instead of losing each other's writes. POSIX local files only: for a path on an object store
    (not a `pathlib.Path`), or without fcntl, no lock is taken."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None or not isinstance(path, Path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
