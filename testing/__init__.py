"""Test utilities: tiny models and the colour-square task (``from medzoo.testing import TINY_MODEL, ...``)."""

from medzoo.testing.tiny import TINY_MODEL, ColourSquares, single_thread, train_colour_model

__all__ = ["TINY_MODEL", "ColourSquares", "single_thread", "train_colour_model"]
