"""The tiny Llama-style tokenizer medzoo ships for tiny random models (tests, ``shrink`` builds, the demo), and its
family flavours (``medzoo-tiny-qwen2``, ``medzoo-tiny-llama3``, ...: see :mod:`tiny_flavours`).

Their files live in ``assets/tiny-tokenizer`` and ``assets/tiny-tokenizer-<flavour>`` and were written by
``assets/build_tiny_tokenizer.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

TINY_TOKENIZER_NAME = "medzoo-tiny"
_ASSETS = "assets"
_FOLDER = "tiny-tokenizer"


def tiny_tokenizer_name(flavour: str | None = None) -> str:
    """``medzoo-tiny`` or ``medzoo-tiny-<flavour>``."""
    return f"{TINY_TOKENIZER_NAME}-{flavour}" if flavour else TINY_TOKENIZER_NAME


def tiny_tokenizer_path(flavour: str | None = None) -> Path:
    """The directory holding a shipped tokenizer's files (loadable with ``AutoTokenizer.from_pretrained``)."""
    root = resources.files("medzoo.plugins.language")
    return Path(str(root.joinpath(_ASSETS, f"{_FOLDER}-{flavour}" if flavour else _FOLDER)))


def tiny_flavour_of(source: str) -> str | None:
    """The flavour a ``medzoo-tiny-<flavour>`` name asks for (``None`` for any other source)."""
    prefix = f"{TINY_TOKENIZER_NAME}-"
    return source[len(prefix):] if source.startswith(prefix) else None


def resolve_tokenizer_source(source: str) -> str:
    """Map ``medzoo-tiny`` and ``medzoo-tiny-<flavour>`` to the shipped directories; any other hub id or path is
    returned unchanged (an unknown flavour is an error naming the known ones)."""
    from medzoo.plugins.language.tiny_flavours import FLAVOURS

    if source == TINY_TOKENIZER_NAME:
        return str(tiny_tokenizer_path())
    flavour = tiny_flavour_of(source)
    if flavour is None:
        return source
    if flavour not in FLAVOURS:
        from medzoo import RecipeError, did_you_mean

        known = ", ".join(tiny_tokenizer_name(name) for name in FLAVOURS)
        raise RecipeError(f"tokenizer {source!r} is not shipped{did_you_mean(flavour, FLAVOURS)}; expected one of "
                          f"{TINY_TOKENIZER_NAME}, {known}")
    return str(tiny_tokenizer_path(flavour))


def load_tiny_tokenizer(padding_side: str = "right", flavour: str | None = None, **options: Any) -> Any:
    """Load a shipped tokenizer as a fast tokenizer (the base one, or a family ``flavour``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_path(flavour)), padding_side=padding_side, **options)
