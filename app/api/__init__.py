"""The Python API: ``medzoo.load`` -> :class:`Model` (``ask``, ``chat``, ``evaluate``), ``medzoo.recipe``,
``medzoo.train``, ``medzoo.evaluate``, ``medzoo.score`` (see docs/python-api.md). Importing it imports no torch."""

from medzoo.app.api.chat import Chat
from medzoo.app.api.functions import evaluate, recipe, score, train
from medzoo.app.api.model import Model, load

__all__ = ["Chat", "Model", "evaluate", "load", "recipe", "score", "train"]
