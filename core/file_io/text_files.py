"""The one decoding rule for every text file medzoo reads: UTF-8, or a one-line error naming the file, the line and
the byte offset of the first byte that is not.

References, predictions, captions, recipes, preference pairs and data sets are read through these helpers, so a
Latin-1 byte in any of them reads the same: ``answers.jsonl: line 3: byte 0xe9 (byte offset 57) is not UTF-8 ...``.
A UTF-8 byte-order mark at the start is accepted and dropped (editors on Windows write one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medzoo.core.errors import DataError, MedzooError

BOM = b"\xef\xbb\xbf"


def not_utf8(path: str | Path, data: bytes, error: UnicodeDecodeError, what: str, first_line: int = 1,
             first_offset: int = 0) -> str:
    """The one-line message for ``data`` (the bytes of ``path`` from ``first_offset``, starting on line
    ``first_line``) that ``error`` found not to be UTF-8."""
    line = first_line + data.count(b"\n", 0, error.start)
    offset = first_offset + error.start
    return (f"{path}: line {line}: byte 0x{data[error.start]:02x} (byte offset {offset}) is not UTF-8; expected "
            f"{what} in UTF-8 (convert it, e.g. iconv -f latin1 -t utf-8)")


def decode_utf8(data: bytes, path: str | Path, what: str = "a text file", error: type[MedzooError] = DataError,
                first_line: int = 1, first_offset: int = 0) -> str:
    """``data`` (read from ``path``) as text; bytes that are not UTF-8 raise ``error`` naming the line and offset."""
    skip = len(BOM) if first_offset == 0 and data.startswith(BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as problem:
        message = not_utf8(path, data[skip:], problem, what, first_line, first_offset + skip)
        raise error(message) from None


def read_bytes(path: str | Path, what: str = "a text file", error: type[MedzooError] = DataError) -> bytes:
    """The bytes of ``path``; a missing or unreadable file raises ``error`` naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: missing; expected {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected {what}") from None
    except OSError as problem:
        raise error(f"{path}: cannot read {what} ({problem.strerror or problem})") from None


def read_text_file(path: str | Path, what: str = "a text file", error: type[MedzooError] = DataError) -> str:
    """``path`` as UTF-8 text (see the module for the rule)."""
    return decode_utf8(read_bytes(path, what, error), path, what, error)


def read_json_file(path: str | Path, what: str = "a JSON file", error: type[MedzooError] = DataError) -> Any:
    """``path`` parsed as JSON; bytes that are not UTF-8 or text that is not JSON raise ``error`` naming the line."""
    text = read_text_file(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{path}: line {problem.lineno} column {problem.colno}: not valid JSON ({problem.msg}); "
                    f"expected {what}") from None


def iter_text_lines(path: str | Path, what: str = "a JSON-lines file",
                    error: type[MedzooError] = DataError) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of ``path``, each decoded by the rule (its own line number and offset)."""
    data = read_bytes(path, what, error)
    offset = len(BOM) if data.startswith(BOM) else 0
    for number, raw in enumerate(data[offset:].split(b"\n"), start=1):
        yield number, decode_utf8(raw, path, what, error, number, offset)
        offset += len(raw) + 1
