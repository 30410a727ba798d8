"""A disk that fills at a known point: every write under one folder fails with ENOSPC from then on.

The fault is injected at the two places bytes leave the process: Python's ``open`` (``io.open``, which
``builtins.open``, ``os.fdopen`` and ``pathlib`` use; torch.save through a Python file, the TensorBoard event
writer's thread, tokenizers' JSON, medzoo's own files) and safetensors' Rust ``serialize_file`` (medzoo's and
transformers' ``save_file``). A failing write keeps the bytes that fit, as a real full disk does, and raises what
the real one raises: ``OSError(ENOSPC)`` from Python, ``SafetensorError("... (os error 28)")`` from safetensors.

When the disk fills, the folder's files are hashed (:attr:`FullDisk.before`): the test then checks that every one
of them is byte-identical after the failed command.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NO_SPACE = "Error while serializing: I/O error: No space left on device (os error 28)"


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


class FullDisk:
    """Writes under ``root`` succeed until ``fills(path)`` is true for a file being written (or ``budget`` bytes
    have been written); that write and every later one fail with ENOSPC until :meth:`free`. With ``only``, just
    the files it accepts fail (a folder on a file system of its own)."""

    def __init__(self, root: Path, fills: Callable[[Path], bool] = lambda path: False,
                 budget: int | None = None, only: Callable[[Path], bool] | None = None) -> None:
        import safetensors.torch

        self.root, self.fills, self.budget, self.only = Path(root).resolve(), fills, budget, only
        self.written = 0
        self.full = False
        self.failed: list[Path] = []
        self.before: dict[str, str] = {}
        self.monkeypatch = pytest.MonkeyPatch()
        monkeypatch = self.monkeypatch
        self.real_open = io.open
        self.real_serialize = safetensors.torch.serialize_file
        monkeypatch.setattr(io, "open", self.open)
        monkeypatch.setattr(builtins, "open", self.open)
        monkeypatch.setattr(safetensors.torch, "serialize_file", self.serialize_file)

    def free(self) -> None:
        """Space is freed: writes succeed again (call it at the end of every test)."""
        self.monkeypatch.undo()

    def under_root(self, target: Any) -> Path | None:
        if isinstance(target, int):
            try:
                target = os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return None
        try:
            path = Path(os.fsdecode(target)).resolve()
        except (TypeError, ValueError):
            return None
        return path if path.is_relative_to(self.root) else None

    def room(self, path: Path, size: int) -> int:
        """How many of ``size`` bytes for ``path`` fit; the first that do not fill the disk."""
        if not self.full and (self.fills(path) or (self.budget is not None and self.written + size > self.budget)):
            self.full = True
            self.before = {name: digest for name, digest in snapshot(self.root).items() if self.root / name != path}
        if self.full and (self.only is None or self.only(path)):
            self.failed.append(path)
            return 0 if self.budget is None else max(0, self.budget - self.written)
        return size

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = self.real_open(file, mode, *args, **kwargs)
        path = self.under_root(file) if any(flag in mode for flag in "wax+") else None
        return handle if path is None else FillingFile(handle, path, self)

    def serialize_file(self, tensors: Any, filename: Any, metadata: Any = None) -> None:
        path = self.under_root(filename)
        if path is None:
            return self.real_serialize(tensors, filename, metadata=metadata)
        self.real_serialize(tensors, filename, metadata=metadata)
        size = Path(filename).stat().st_size
        fits = self.room(path, size)
        if fits < size:
            os.truncate(filename, fits)
            from safetensors import SafetensorError

            raise SafetensorError(NO_SPACE)
        self.written += size
        return None


class FillingFile:
    """A file object whose writes count against the disk and fail with ENOSPC once it is full."""

    def __init__(self, handle: Any, path: Path, disk: FullDisk) -> None:
        self._handle, self._path, self._disk = handle, path, disk

    def write(self, data: Any) -> int:
        size = len(data.encode() if isinstance(data, str) else data)
        fits = self._disk.room(self._path, size)
        if fits < size:
            if fits:
                self._handle.write(data[:fits])
                self._handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.written += size
        return self._handle.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __iter__(self) -> Any:
        return iter(self._handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)
