"""Atomic writes: a file or a folder appears complete under its final name, or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medzoo.core.errors import MedzooError
from medzoo.core.file_io.storage import storage_failure, tensor_bytes, writing


def write_atomically(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk and rename it into place."""
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else data
    with writing(path, len(payload)):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise (storage_failure(error, path, len(payload)) or naming(error, path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def naming(error: OSError, path: str | Path) -> OSError:
    """``error`` with ``path`` as its file name when it has none (a failed write or fsync does not say where)."""
    if error.filename is not None:
        return error
    named = type(error)(error.errno, error.strerror or os.strerror(error.errno or 0), os.fspath(path))
    return named


def write_file(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` in place, for files inside a staging folder; a storage failure is a
    :class:`StorageError` naming the file and its size."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with writing(path, len(payload)):
        path.write_bytes(payload)
    return path


def save_tensors(tensors: dict[str, Any], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """safetensors' ``save_file``; a full disk (its "os error 28") is a :class:`StorageError` naming the file and
    the tensors' bytes."""
    from safetensors.torch import save_file

    with writing(path, tensor_bytes(tensors)):
        save_file(tensors, os.fspath(path), metadata=metadata)
    return Path(path)


def save_torch_object(value: Any, path: str | Path) -> Path:
    """``torch.save`` through a Python file, so a failed write is an ``OSError`` with its errno (torch's own file
    writer reports only "file write failed") and then a :class:`StorageError` naming the tensors' bytes."""
    import torch

    with writing(path, tensor_bytes(value)), open(path, "wb") as handle:
        torch.save(value, handle)
    return Path(path)


def write_json_atomically(path: str | Path, payload: Any, **dumps: Any) -> Path:
    """``json.dumps(payload, **dumps)`` plus a final newline, written atomically."""
    return write_atomically(path, json.dumps(payload, **dumps) + "\n")


class NotOursError(MedzooError):
    """An output path holds something medzoo did not write; medzoo refuses to replace or delete it."""


def refuse_unless_ours(path: str | Path, marker: str, what: str) -> None:
    """Raise :class:`NotOursError` when ``path`` exists, is not an empty folder and lacks ``marker``.

    ``marker`` is a file medzoo writes into every folder of that kind (a model's manifest, a run's recipe); an
    existing folder without it was written by someone else, and replacing it would destroy their data.
    """
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir() and (path / marker).is_file():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    kind = "a folder" if path.is_dir() else "a file"
    raise NotOursError(
        f"{path}: {kind} medzoo did not write (no {marker}); refusing to replace it with {what}: "
        "choose another output or remove it yourself"
    )


def refuse_overlap(output: str | Path, source: str | Path, option: str = "--output") -> None:
    """Raise :class:`NotOursError` when writing ``output`` would replace ``source`` or a folder holding it."""
    target, origin = Path(output).resolve(), Path(source).resolve()
    if target == origin or origin.is_relative_to(target) or target.is_relative_to(origin):
        raise NotOursError(f"{option} {output}: overlaps the source {source}; write the result somewhere else")


@contextmanager
def atomic_directory(directory: str | Path, owned_marker: str | None = None, what: str = "new output") -> Iterator[Path]:
    """Yield an empty staging folder beside ``directory``; when the block succeeds it replaces ``directory`` (an
    existing one is moved aside first and removed after), when it raises the staging folder is removed.

    With ``owned_marker``, an existing ``directory`` is replaced only when it holds that file (medzoo wrote it) or
    is empty; anything else raises :class:`NotOursError` before any work is done.
    """
    directory = Path(directory)
    if owned_marker is not None:
        refuse_unless_ours(directory, owned_marker, what)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        try:
            yield staging
        except Exception as error:  # a full disk while building: named under the folder's final name
            named = getattr(error, "filename", None)
            failure = storage_failure(error, named or staging, folder=named is None)
            if failure is None:
                raise
            raise failure.moved(staging, directory) from None
        if directory.exists():
            backup = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(directory, backup)
            os.replace(staging, directory)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
