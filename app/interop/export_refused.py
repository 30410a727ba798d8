"""The one-line refusal of an export whose target format cannot hold the model."""

from medzoo.app.interop import InteropError


class ExportRefused(InteropError):
    """The model holds something the target format cannot represent."""
