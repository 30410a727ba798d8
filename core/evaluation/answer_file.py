"""JSON-lines answer files (``predictions*.jsonl``, ``reviews.jsonl``): read them, survive a torn last line, append
durably.

A run killed mid-write leaves a last line with no newline that is not valid JSON. Files medzoo appends to drop
that line (with a one-line note) and ask its question again; files medzoo only reads (the judge's ``--answers``)
refuse it. Any other unreadable line, and any byte that is not UTF-8, is a :class:`DataError` naming the file and
the line: it was not left by an interrupted append, so guessing would hide damage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from medzoo.core.atomic_writes import naming
from medzoo.core.errors import DataError
from medzoo.core.file_io.storage import storage_failure
from medzoo.core.file_io.text_files import decode_utf8

Echo = Callable[[str], Any]
TORN_NOTE = "{path}: dropped a torn last line ({size} bytes) left by an interrupted run; it will be {redo} again"


class _BadLine(Exception):
    """A line that is not UTF-8 or not JSON; the message says which."""


def _decode(path: Path, number: int, offset: int, raw: bytes) -> Any:
    """The JSON value of line ``number`` (at byte ``offset``); bytes that are not UTF-8 are a DataError by the one
    decoding rule (:mod:`medzoo.core.file_io.text_files`), text that is not JSON a :class:`_BadLine`."""
    text = decode_utf8(raw, path, "one JSON answer per line", DataError, number, offset)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _BadLine(f"not valid JSON ({error.msg} at column {error.colno})") from None


def _line(path: Path, number: int, offset: int, raw: bytes) -> Any:
    """The JSON value of one line; DataError naming the file and line when it is not UTF-8 or not JSON."""
    try:
        return _decode(path, number, offset, raw)
    except _BadLine as error:
        raise DataError(f"{path}: line {number}: {error}") from None


def read_jsonl(
    path: str | Path, *, repair: bool = False, redo: str = "answered", echo: Echo = print
) -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line of ``path`` (none when it does not exist).

    A torn last line (no newline, not valid JSON) is cut off the file with a note via ``echo`` when ``repair``
    (a file medzoo appends to), else it is a DataError (a file medzoo only reads).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    rows, offset = [], 0
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            rows.append((number, _line(path, number, offset, raw)))
        offset += len(raw) + 1
    if tail.strip():
        number = len(lines) + 1
        try:
            rows.append((number, _decode(path, number, offset, tail)))
        except (_BadLine, DataError) as error:
            why = error if isinstance(error, _BadLine) else "not UTF-8: a character cut in two"
            if not repair:
                raise DataError(
                    f"{path}: line {number}: torn last line ({len(tail)} bytes, no newline, {why}): the run "
                    "writing this file was interrupted; finish or redo that run first"
                ) from None
            _truncate(path, len(data) - len(tail))
            echo(TORN_NOTE.format(path=path, size=len(tail), redo=redo))
    return rows


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def records_with(path: Path, rows: Iterable[tuple[int, Any]], keys: dict[str, type]) -> list[dict[str, Any]]:
    """The rows as objects holding ``keys`` (name -> type); DataError naming the line of the first that does not."""
    records = []
    wanted = " and ".join(keys)
    for number, row in rows:
        if not isinstance(row, dict) or any(
            row.get(key) is None or (kind is str and not isinstance(row[key], str)) for key, kind in keys.items()
        ):
            raise DataError(f"{path}: line {number}: expected an object with {wanted}")
        records.append(row)
    return records


class JsonlAppender:
    """Appends JSON lines to a file: a torn last line is cut off first (never appended onto), a complete last line
    missing its newline gets one, and every :meth:`write` is flushed and fsynced before it returns."""

    def __init__(self, path: str | Path, *, redo: str = "answered", echo: Echo = print, ensure_ascii: bool = True):
        self.path = Path(path)
        self.redo, self.echo, self.ensure_ascii = redo, echo, ensure_ascii
        self._handle: Any = None

    def __enter__(self) -> JsonlAppender:
        read_jsonl(self.path, repair=True, redo=self.redo, echo=self.echo)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("ab")
        if self._handle.tell() > 0:
            with self.path.open("rb") as reader:
                reader.seek(-1, os.SEEK_END)
                if reader.read(1) != b"\n":
                    self._handle.write(b"\n")
        return self

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one chunk of records, one line each, and make it durable."""
        data = b"".join(json.dumps(r, ensure_ascii=self.ensure_ascii).encode("utf-8") + b"\n" for r in records)
        if data:
            try:
                self._handle.write(data)
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError as error:  # a full disk: the next run cuts the torn line this leaves
                raise (storage_failure(error, self.path, len(data)) or naming(error, self.path)) from None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._handle.close()
