"""The one table of weight dtypes: recipe / CLI names, training precision aliases, and their torch dtypes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medzoo.core.errors import PluginError

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


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A component's ``dtype`` option: ``None`` -> float32, a name such as ``"bfloat16"`` -> the torch dtype;
    any other name is a one-line :class:`PluginError` listing the known ones."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return torch_dtype(str(dtype))
    except KeyError:
        raise PluginError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_NAMES)}") from None


def precision_autocast(precision: str, device_type: str) -> Any:
    """The autocast context (``torch.autocast``) of a stage's ``precision`` on ``device_type`` (off for ``fp32``)."""
    import torch

    return torch.autocast(device_type=device_type, dtype=torch_dtype(precision), enabled=precision != "fp32")
