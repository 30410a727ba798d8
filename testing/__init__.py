"""Test utilities: tiny models, the colour-square task and the registered names to parametrise over
(``from medzoo.testing import TINY_MODEL, concrete_names, ...``)."""

from medzoo.testing.registered import concrete_names
from medzoo.testing.tiny import TINY_MODEL, ColourSquares, single_thread, train_colour_model

__all__ = ["TINY_MODEL", "ColourSquares", "concrete_names", "single_thread", "train_colour_model"]
