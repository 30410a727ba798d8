"""The one table of weight dtypes: recipe / CLI names, training precision aliases, and their torch dtypes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: the names a recipe's ``model.dtype``, ``--dtype`` and saved models use
DTYPE_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: training precision names (a stage's ``precision``) -> dtype names
PRECISIONS: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def dtype_name(name: str) -> str | None:
    """The canonical name of a dtype name or precision alias (``bf16`` -> ``bfloat16``); ``None`` if unknown."""
    canonical = PRECISIONS.get(name, name)
    return canonical if canonical in DTYPE_NAMES else None


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a name from ``DTYPE_NAMES`` or ``PRECISIONS``; ``KeyError`` for any other."""
    import torch

    canonical = dtype_name(name)
    if canonical is None:
        raise KeyError(name)
    return getattr(torch, canonical)
