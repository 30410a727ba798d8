"""Moved to :mod:`medzoo.core.inference`; ``processor_for`` is re-exported here until its last importers move."""

from medzoo.core.inference.processing import processor_for

__all__ = ["processor_for"]
