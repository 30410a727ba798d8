"""What a prepare run has finished: files (size + sha256) and units (a PMC package...), for resuming.

The manifest is a journal, ``downloads/<name>/manifest.jsonl`` under the output: one JSON line per finished file
or unit, appended and fsynced as soon as it is finished, so ``kill -9`` at any moment loses at most the line being
written; a torn last line is dropped when the journal is read. :meth:`Manifest.compact` rewrites it (atomically,
one line per entry) at the end of a run. A journal scales to the ~700K figures of LLaVA-Med, where rewriting a
whole manifest after each file would not.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import NotOursError, write_atomically
from medzoo.core.file_io.storage import writing


class Manifest:
    """Finished files (by path relative to ``root``) and units (by id) of one data set."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}
        self.units: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        #: outputs this data set writes (claimed before the first write, so a kill cannot orphan them)
        self.claims: set[str] = set()
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a line cut short by a kill has no newline yet
        if len(complete) != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        if "file" in entry:
            self.files[str(entry["file"])] = entry
        elif "unit" in entry:
            self.units[str(entry["unit"])] = entry
        elif "claim" in entry:
            self.claims.add(str(entry["claim"]))
        elif "key" in entry:
            self.extra[str(entry["key"])] = entry.get("value")

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with writing(self.path, len(line)), self.path.open("ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._apply(entry)

    # -- files ---------------------------------------------------------------------------------------------

    def relative(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def finished(self, path: Path) -> dict[str, Any] | None:
        """The entry of ``path`` when it is recorded and still on disk with the recorded size, else None."""
        entry = self.files.get(self.relative(path))
        if entry is None or not path.is_file() or path.stat().st_size != entry.get("size"):
            return None
        return entry

    def add_file(self, path: Path, sha256: str, source: str) -> None:
        self._append({"file": self.relative(path), "size": path.stat().st_size, "sha256": sha256,
                      "source": source})

    def claim(self, path: Path) -> None:
        """Record that this data set writes ``path``; refuses (NotOursError) a file that exists and was not
        written by a prepare run of this data set, so a user's own file is never replaced."""
        relative = self.relative(path)
        if relative in self.files or relative in self.claims:
            return
        if path.exists() or path.is_symlink():
            raise NotOursError(
                f"{path}: a file `medzoo data prepare` did not write (not in {self.path}); refusing to replace it: "
                "move it away or choose another --output"
            )
        self._append({"claim": relative})

    # -- units and other facts -----------------------------------------------------------------------------

    def unit_done(self, unit: str) -> bool:
        return unit in self.units

    def add_unit(self, unit: str, **detail: Any) -> None:
        self._append({"unit": unit, **detail})

    def remember(self, key: str, value: Any) -> None:
        """A fact later runs reuse (e.g. a hub listing, so a finished data set reruns offline)."""
        self._append({"key": key, "value": value})

    def compact(self) -> None:
        """Rewrite the journal with one line per entry (atomically)."""
        with self._lock:
            entries = [*self.files.values(), *self.units.values(),
                       *({"claim": claim} for claim in sorted(self.claims - set(self.files))),
                       *({"key": key, "value": value} for key, value in self.extra.items())]
            if entries or self.path.exists():
                write_atomically(self.path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
