"""Storage failures (a full disk, a quota, a read-only file system, a refused permission) as one line.

Every writer reports a failed write through :func:`storage_failure`: it recognises the failure whatever raised it
(an ``OSError`` from Python's own files, safetensors' ``SafetensorError`` "... (os error 28)") and turns it into a
:class:`StorageError` naming the folder, the file and the bytes that were being written, which the CLI prints as
one line with exit code 74. Nothing here imports torch or safetensors.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medzoo.core.errors import MedzooError

#: storage failures a user fixes outside medzoo: what went wrong, by errno
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
STORAGE_EXIT_CODE = 74  # EX_IOERR
FULL = (errno.ENOSPC, errno.EDQUOT)
#: how Rust libraries (safetensors, tokenizers) print an OS error: "No space left on device (os error 28)"
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def storage_errno(error: BaseException) -> int | None:
    """The errno of a storage failure, from an ``OSError``, a Rust library's "(os error N)", or an error raised
    while handling a full disk (torch.save swallows its file's ``OSError`` and raises "unexpected pos" instead);
    else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            code = current.errno
        else:
            found = RUST_OS_ERROR.search(str(current))
            code = int(found.group(1)) if found else None
        if code in STORAGE_ERRNOS and (current is error or code in FULL):  # a chained one: only a full disk
            return code
        current = current.__cause__ or current.__context__
    return None


def advice(code: int) -> str:
    if code in FULL:
        return ("free some space (or point the output elsewhere) and run the command again: finished files were "
                "written atomically and runs resume")
    return "choose a location you may write to"


def size_text(nbytes: int) -> str:
    """``1234567`` -> ``"1.2 MB (1234567 bytes)"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit} ({nbytes} bytes)"
    return f"{nbytes} bytes"


class StorageError(MedzooError):
    """A write failed for lack of space or permission: names the folder, the file and the bytes it needed."""

    exit_code = STORAGE_EXIT_CODE

    def __init__(self, path: str | Path, code: int, needed_bytes: int | None = None, folder: bool = False) -> None:
        self.path, self.code, self.needed_bytes, self.folder = Path(path), code, needed_bytes, folder
        super().__init__(self.message())

    def message(self) -> str:
        name = errno.errorcode.get(self.code, str(self.code))
        needed = f" ({size_text(self.needed_bytes)} needed)" if self.needed_bytes is not None else ""
        where, what = (self.path, "into it") if self.folder else (self.path.parent, self.path.name)
        return f"{where}: {STORAGE_ERRNOS[self.code]} ({name}) while writing {what}{needed}; {advice(self.code)}"

    def moved(self, staging: Path, final: Path) -> StorageError:
        """The same failure named under ``final`` when it happened inside the staging folder ``staging``."""
        if not self.path.is_relative_to(staging):
            return self
        return StorageError(final / self.path.relative_to(staging), self.code, self.needed_bytes, self.folder)


def storage_failure(error: BaseException, path: str | Path, needed_bytes: int | None = None,
                    folder: bool = False) -> StorageError | None:
    """``error`` as a :class:`StorageError` for ``path`` (a file, or with ``folder`` a folder being written into)
    when it is a storage failure, else None."""
    if isinstance(error, StorageError):
        return error
    code = storage_errno(error)
    if code is None:
        return None
    return StorageError(path, code, needed_bytes, folder)


@contextmanager
def writing(path: str | Path, needed_bytes: int | None = None) -> Iterator[None]:
    """Turn a storage failure raised inside the block into a :class:`StorageError` for ``path``."""
    try:
        yield
    except Exception as error:
        failure = storage_failure(error, path, needed_bytes)
        if failure is None or failure is error:
            raise
        raise failure from None


def storage_message(error: BaseException) -> str | None:
    """``<path>: <what went wrong>; <what to do>`` for a storage failure that no writer named; None otherwise."""
    code = storage_errno(error)
    if code is None:
        return None
    filename = getattr(error, "filename", None)
    where = os.fspath(filename) if filename is not None else "a file medzoo was writing"
    return f"{where}: {STORAGE_ERRNOS[code]} ({errno.errorcode.get(code, code)}); {advice(code)}"


def tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in ``value`` (nested dicts, lists and tuples): what writing them needs at least."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.numel()) * int(value.element_size())
    if isinstance(value, dict):
        return sum(tensor_bytes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(item) for item in value)
    return 0
