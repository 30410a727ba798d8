"""One writer per run folder: an exclusive ``flock`` on ``RUN/run.lock`` held for the whole run.

The lock belongs to an open file description, so the kernel drops it when its holder exits, however it exits
(``kill -9`` included): a lock file left behind by a dead run never blocks the next one. The file holds the
holder's pid, host and start time, for the message another writer gets.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medzoo.core.errors import TrainingError

LOCK_FILE = "run.lock"

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def holder_description(lock_path: Path) -> str:
    """``pid 123 on host since 2024-05-01 12:00:00`` from a lock file, or ``an unknown process``."""
    try:
        holder = json.loads(lock_path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']} since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


@contextmanager
def run_lock(
    output_dir: str | Path, enabled: bool = True, check: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the run folder's lock for the block; another holder raises a one-line :class:`TrainingError`.

    ``check`` runs once the lock is held and before the holder is written into the lock file, so a run it
    refuses leaves the folder as it was. ``enabled=False`` (the other processes of a multi-process launch: the
    main one locks for them) only runs ``check``.
    """
    if not enabled or fcntl is None:
        if check is not None:
            check()
        yield
        return
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingError(
                f"{output_dir}: another training is writing this run ({holder_description(path)}, see {LOCK_FILE}); "
                "wait for it to finish or choose another --output-dir"
            ) from None
        if check is not None:
            check()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(descriptor, 0)
        os.write(descriptor, (json.dumps(holder) + "\n").encode("utf-8"))
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
