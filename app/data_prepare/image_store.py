"""The image folder of a prepared data set: images placed once (hard link or copy, or bytes written by content
hash), each checked to decode completely; a rerun keeps files already there."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from medzoo.core.atomic_writes import naming, write_atomically
from medzoo.core.file_io.storage import storage_failure

UNSAFE = "unsafe image path"
UNREADABLE = "unreadable image"


def safe_relative(name: str) -> str | None:
    """``name`` as a relative POSIX path inside a folder, or None when it is absolute or climbs out (``..``)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0] or path.as_posix() == ".":
        return None
    return path.as_posix()


def image_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] in (b"GIF8",):
        return ".gif"
    return ".img"


class ImageStore:
    """Images under ``root``; :meth:`put_bytes` and :meth:`put_file` return (name relative to ``root``, problem)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._verdicts: dict[Path, str | None] = {}

    def put_bytes(self, data: bytes) -> tuple[str, str | None]:
        """Write ``data`` as ``<sha256[:16]><suffix>`` (the same image in many rows is stored once)."""
        name = hashlib.sha256(data).hexdigest()[:16] + image_suffix(data)
        target = self.root / name
        if not (target.is_file() and target.stat().st_size == len(data)):
            write_atomically(target, data)
        problem = self._check(target)
        if problem:
            target.unlink(missing_ok=True)  # bytes that are no image are not kept
        return name, problem

    def put_file(self, source: Path, name: str) -> tuple[str, str | None]:
        """Place ``source`` at ``root/name`` (a hard link where possible, else a copy)."""
        relative = safe_relative(name)
        if relative is None:
            return name, UNSAFE
        target = self.root / relative
        if target.resolve() != source.resolve() and not (
            target.is_file() and target.stat().st_size == source.stat().st_size
        ):
            problem = self._check(source)
            if problem:
                return relative, problem
            place(source, target)
        return relative, self._check(target)

    def _check(self, path: Path) -> str | None:
        if path not in self._verdicts:
            from medzoo.plugins.datasets.image_checks import decode_problem

            self._verdicts[path] = UNREADABLE if decode_problem(path) else None
        return self._verdicts[path]


def place(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source``, or an atomic copy where links are not possible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(descriptor)
    os.unlink(temporary)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise (storage_failure(error, target, source.stat().st_size) or naming(error, target)) from None


def write_stream(target: Path, stream) -> None:
    """Copy the file object ``stream`` to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        size = getattr(stream, "file_size", None)  # a zip member's size; other streams do not say
        raise (storage_failure(error, target, size) or naming(error, target)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
