"""Loading a transformers vision model (hub id or local folder), its ``config.json`` and its
``preprocessor_config.json``, each damaged or missing file a one-line :class:`PluginError` naming it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from medzoo.core.checked_reads import check_checkpoint_folder, first_line, read_json
from medzoo.core.dtypes import resolve_dtype
from medzoo.core.errors import PluginError

PREPROCESSOR_FILE = "preprocessor_config.json"


def load_vision_model(
    encoder: str,
    source: str,
    model_class: Any,
    config_class: Any,
    dtype: torch.dtype | str | None,
    what: str,
    **config_overrides: Any,
) -> Any:
    """``model_class.from_pretrained(source)`` with every weight of the vision model present.

    A full checkpoint (vision + text) works: only the vision weights are taken. A local folder's config and
    safetensors are checked first (a missing config, a truncated file or a wrong shape is one line naming it).
    """
    local = Path(source)
    if local.is_dir() and not (local / "config.json").is_file():
        raise PluginError(f"{local / 'config.json'}: missing; expected the {what} checkpoint's config")
    try:
        if local.is_dir():
            check_checkpoint_folder(
                local,
                lambda: model_class(config_class.from_pretrained(local, **config_overrides)),
                PluginError,
                f"{what} vision weights",
            )
        model, loading = model_class.from_pretrained(
            source, dtype=resolve_dtype(dtype), output_loading_info=True, **config_overrides
        )
    except (OSError, ValueError) as error:
        raise PluginError(f"vision encoder {encoder!r}: cannot load {source!r}: {first_line(error)}") from error
    missing = sorted(loading.get("missing_keys", ()))
    if missing:
        raise PluginError(
            f"vision encoder {encoder!r}: {source!r} lacks {len(missing)} vision-tower weights "
            f"(first: {missing[0]}); expected a {what} checkpoint"
        )
    return model.eval()


def read_preprocessor(source: str) -> tuple[dict[str, Any], Path] | None:
    """The source's ``preprocessor_config.json`` (local folder or hub cache) and its path, or None."""
    from transformers.utils import cached_file

    path = cached_file(source, PREPROCESSOR_FILE, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return None
    return read_json(Path(path), PluginError, "an image processor config"), Path(path)


def image_statistics(
    processor: dict[str, Any], path: Path, mean: Sequence[float], std: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``image_mean`` / ``image_std`` of a processor config (defaults where absent), 3 numbers each."""
    mean = processor.get("image_mean", mean)
    std = processor.get("image_std", std)
    if not all(isinstance(values, list | tuple) and len(values) == 3 for values in (mean, std)):
        raise PluginError(f"{path}: image_mean and image_std must hold 3 values each")
    return tuple(float(value) for value in mean), tuple(float(value) for value in std)


def square_side(size: Any, path: Path, key: str) -> int | None:
    """The side of a processor ``size`` / ``crop_size`` entry that must be square (int or height = width)."""
    if size is None:
        return None
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        if isinstance(size.get("shortest_edge"), int):
            return size["shortest_edge"]
        height, width = size.get("height"), size.get("width")
        if isinstance(height, int) and height == width:
            return height
    raise PluginError(f"{path}: {key} {size!r} is not a square size; expected an integer or equal height and width")


def read_model_config(encoder: str, source: str, what: str) -> dict[str, Any]:
    """The source's ``config.json`` (local folder or hub cache) as a dict, before any model is built."""
    from transformers.utils import cached_file

    local = Path(source)
    if local.is_dir() and not (local / "config.json").is_file():
        raise PluginError(f"{local / 'config.json'}: missing; expected the {what} checkpoint's config")
    try:
        path = cached_file(source, "config.json")
    except (OSError, ValueError) as error:
        raise PluginError(f"vision encoder {encoder!r}: cannot load {source!r}: {first_line(error)}") from error
    return read_json(Path(path), PluginError, f"a {what} config")
