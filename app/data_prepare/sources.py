"""What a ``--source`` value names: a local file or folder, an http(s) URL, or a Hugging Face dataset id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from medzoo.core.errors import DataError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """``kind`` is ``local`` (``value`` an existing path), ``url`` or ``hub``."""

    kind: str
    value: str

    @property
    def path(self) -> Path:
        return Path(self.value)

    @property
    def basename(self) -> str:
        """The file name a URL or path ends with ("" for a URL ending in ``/``)."""
        if self.kind == "url":
            return unquote(urlparse(self.value).path.rsplit("/", 1)[-1])
        return self.path.name

    def __str__(self) -> str:
        return self.value


def parse_source(value: str) -> Source:
    """An existing path wins, then ``http(s)://`` URLs, then ``owner/name`` hub ids; anything else is an error."""
    text = value.strip()
    if text.startswith(("http://", "https://")):
        return Source("url", text)
    path = Path(text).expanduser()
    if path.exists():
        return Source("local", str(path))
    if HUB_ID.match(text) and not text.startswith((".", "~")):
        return Source("hub", text)
    raise DataError(
        f"--source {value!r}: no such file or folder, and not an http(s) URL or a Hugging Face dataset id "
        "(owner/name)"
    )
