"""Pieces every benchmark family here shares: options, default data paths, missing predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medzoo.core.errors import DataError
from medzoo.core.interfaces.benchmark import BenchmarkItem


def synth_root(benchmark: str, options: dict[str, Any]) -> Path:
    """The ``medzoo data synth`` output folder named by the option ``root``."""
    root = options.get("root")
    if not root:
        raise DataError(
            f"benchmark {benchmark}: set the option root=DIR (the folder written by `medzoo data synth --output DIR`)"
        )
    folder = Path(str(root)).expanduser()
    if not folder.is_dir():
        raise DataError(f"benchmark {benchmark}: option root={root!r} is not a folder")
    return folder


def predictions_for(predictions: dict[str, str], items: Sequence[BenchmarkItem]) -> tuple[list[str], list[str]]:
    """(prediction per item, ids of items without one); a missing prediction scores as the empty answer."""
    texts, missing = [], []
    for item in items:
        text = predictions.get(item.question_id)
        if text is None:
            missing.append(item.question_id)
            text = ""
        texts.append(str(text))
    return texts, missing


def option_int(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"benchmark option {key}={value!r}: expected an integer") from None
