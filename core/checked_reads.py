"""Reading files medzoo wrote (JSON, safetensors) so that a damaged one is a one-line error naming the file.

Every helper takes the error class to raise (``MedzooError`` for model folders, ``TrainingError`` for
checkpoints, ``DataError`` for data sets), so callers keep their own error kinds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from medzoo.core.errors import MedzooError
from medzoo.core.file_io.text_files import read_text_file

if TYPE_CHECKING:  # torch loads with the first tensor read, not with this module (the CLI imports it)
    import torch

DAMAGED = "the file is truncated or damaged"


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (at most ``limit`` characters), or its type name."""
    for line in str(error).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return type(error).__name__


def read_text(path: Path, error: type[MedzooError], what: str) -> str:
    """``path`` as UTF-8 text; a missing, unreadable or non-UTF-8 file raises ``error`` naming it (the one rule of
    :mod:`medzoo.core.file_io.text_files`)."""
    return read_text_file(path, what, error)


def read_json(path: Path, error: type[MedzooError], what: str, kind: type = dict) -> Any:
    """``path`` parsed as JSON whose top level is ``kind``; any problem raises ``error`` naming the file."""
    text = read_text(path, error, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(
            f"{path}: not valid JSON (line {problem.lineno} column {problem.colno}: {problem.msg}); "
            f"expected {what} ({DAMAGED})"
        ) from None
    if not isinstance(value, kind):
        raise error(f"{path}: top level is a JSON {json_type(value)}, expected a JSON {json_type(kind())} ({what})")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_safetensors(path: Path, error: type[MedzooError], what: str) -> None:
    """Read only the header of a safetensors file: a missing, empty or truncated one raises ``error``."""
    if not path.is_file():
        raise error(f"{path}: missing; expected {what}")
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as problem:
        raise error(f"{path}: not a readable safetensors file ({first_line(problem)}); {DAMAGED}") from None


def read_safetensors(path: Path, error: type[MedzooError], what: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a missing or damaged file raises ``error`` naming it."""
    from safetensors.torch import load_file

    check_safetensors(path, error, what)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as problem:
        raise error(f"{path}: not a readable safetensors file ({first_line(problem)}); {DAMAGED}") from None


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (no tensor data is read)."""
    with safe_open(str(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118


def shape_mismatch(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]
) -> tuple[str, tuple[int, ...], tuple[int, ...]] | None:
    """The first (sorted) tensor present in both whose shapes differ: (name, found shape, expected shape)."""
    for key in sorted(set(expected) & set(found)):
        if tuple(expected[key]) != tuple(found[key]):
            return key, tuple(found[key]), tuple(expected[key])
    return None


def load_weights_into(
    module: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path, error: type[MedzooError], what: str
) -> None:
    """``module.load_state_dict(weights)`` (strict); a wrong shape, missing or extra tensor raises ``error``."""
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    mismatch = shape_mismatch(expected, {key: tuple(value.shape) for key, value in weights.items()})
    if mismatch:
        key, found, wanted = mismatch
        raise error(f"{path}: tensor {key!r} has shape {list(found)}, {what} expects {list(wanted)}")
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing:
        raise error(f"{path}: lacks tensor {missing[0]!r} ({len(missing)} missing) that {what} expects")
    if extra:
        raise error(f"{path}: holds tensor {extra[0]!r} ({len(extra)} unexpected) that {what} does not have")
    module.load_state_dict(weights)


def check_checkpoint_folder(
    folder: Path, meta_model: Callable[[], torch.nn.Module], error: type[MedzooError], what: str
) -> None:
    """The safetensors weights of a local Hugging Face checkpoint folder are whole and fit its architecture.

    ``meta_model()`` builds the model from the folder's config; it runs on the meta device (no memory, no
    initialisation), so a wrong tensor is reported by name before anything is loaded.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index, error, "a safetensors shard index").get("weight_map") or {}
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = [folder / "model.safetensors"] if (folder / "model.safetensors").is_file() else []
    for path in files:
        check_safetensors(path, error, what)
    if not files:
        return
    import torch

    with torch.device("meta"):
        model = meta_model()
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    for path in files:
        mismatch = shape_mismatch(expected, safetensors_shapes(path))
        if mismatch:
            key, found, wanted = mismatch
            raise error(
                f"{path}: tensor {key!r} has shape {list(found)}, the architecture in "
                f"{folder / 'config.json'} expects {list(wanted)}"
            )
