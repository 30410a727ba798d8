"""The tiny Llama-style tokenizer medzoo ships for tiny random models (tests, ``shrink`` builds, the demo), and its
family variants (``medzoo-tiny-qwen2``, ``medzoo-tiny-llama3``, ...: see :mod:`tiny_tokenizer_families`).

Their files live in ``assets/tiny-tokenizer`` and ``assets/tiny-tokenizer-<family>`` and were written by
``assets/build_tiny_tokenizer.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

TINY_TOKENIZER_NAME = "medzoo-tiny"
_ASSETS = "assets"
_FOLDER = "tiny-tokenizer"


def tiny_tokenizer_name(family: str | None = None) -> str:
    """``medzoo-tiny`` or ``medzoo-tiny-<family>``."""
    return f"{TINY_TOKENIZER_NAME}-{family}" if family else TINY_TOKENIZER_NAME


def tiny_tokenizer_path(family: str | None = None) -> Path:
    """The directory holding a shipped tokenizer's files (loadable with ``AutoTokenizer.from_pretrained``)."""
    root = resources.files("medzoo.plugins.language")
    return Path(str(root.joinpath(_ASSETS, f"{_FOLDER}-{family}" if family else _FOLDER)))


def tiny_family_of(source: str) -> str | None:
    """The family a ``medzoo-tiny-<family>`` name asks for (``None`` for any other source)."""
    prefix = f"{TINY_TOKENIZER_NAME}-"
    return source[len(prefix):] if source.startswith(prefix) else None


def resolve_tokenizer_source(source: str) -> str:
    """Map ``medzoo-tiny`` and ``medzoo-tiny-<family>`` to the shipped directories; any other hub id or path is
    returned unchanged (an unknown family is an error naming the known ones)."""
    from medzoo.plugins.language.tiny_tokenizer_families import TOKENIZER_FAMILIES

    if source == TINY_TOKENIZER_NAME:
        return str(tiny_tokenizer_path())
    family = tiny_family_of(source)
    if family is None:
        return source
    if family not in TOKENIZER_FAMILIES:
        from medzoo import RecipeError, did_you_mean

        known = ", ".join(tiny_tokenizer_name(name) for name in TOKENIZER_FAMILIES)
        raise RecipeError(f"tokenizer {source!r} is not shipped{did_you_mean(family, TOKENIZER_FAMILIES)}; expected one of "
                          f"{TINY_TOKENIZER_NAME}, {known}")
    return str(tiny_tokenizer_path(family))


def load_tiny_tokenizer(padding_side: str = "right", family: str | None = None, **options: Any) -> Any:
    """Load a shipped tokenizer as a fast tokenizer (the base one, or a family ``family``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_path(family)), padding_side=padding_side, **options)
