"""The tiny Llama-style tokenizer medzoo ships for tiny random models (tests, ``shrink`` builds, the demo).

Its files live in ``assets/tiny-tokenizer`` and were written by ``assets/build_tiny_tokenizer.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

TINY_TOKENIZER_NAME = "medzoo-tiny"
_ASSET_DIRECTORY = ("assets", "tiny-tokenizer")


def tiny_tokenizer_path() -> Path:
    """The directory holding the shipped tokenizer files (loadable with ``AutoTokenizer.from_pretrained``)."""
    root = resources.files("medzoo.plugins.language")
    return Path(str(root.joinpath(*_ASSET_DIRECTORY)))


def resolve_tokenizer_source(source: str) -> str:
    """Map the name ``medzoo-tiny`` to the shipped directory; any other hub id or path is returned unchanged."""
    return str(tiny_tokenizer_path()) if source == TINY_TOKENIZER_NAME else source


def load_tiny_tokenizer(padding_side: str = "right", **options: Any) -> Any:
    """Load the shipped tokenizer as a fast Llama tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()), padding_side=padding_side, **options)
