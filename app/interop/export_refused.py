"""Where ``ExportRefused`` used to live: it is ``medzoo.ExportRefused`` now (``core/errors.py``), so a plugin
raises it through the public API. Kept only while ``plugins/vision/siglip2.py`` still imports it from here;
remove this module once that file says ``from medzoo import ExportRefused``."""

from medzoo.core.errors import ExportRefused

__all__ = ["ExportRefused"]
