"""What every weight-carrying component offers: real pretrained weights or a tiny random model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Buildable(ABC):
    """A component built from pretrained weights (hub id or local path) or from a config (random init)."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, source: str, **options: Any) -> Buildable:
        """Load real weights from a hub id or a local directory."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Buildable:
        """Build with random weights from an architecture config."""

    @classmethod
    def weightless(cls, source: str, **options: Any) -> Buildable | None:
        """What :meth:`from_pretrained` builds from ``source``, from its config alone, without reading its weights
        (the caller builds on the ``meta`` device): its shapes and layers are checked before any weights load.
        ``None`` (the default): only loading the weights tells."""
        return None

    @classmethod
    @abstractmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A tiny architecture config of the same type, for tests and ``shrink`` builds."""

    @abstractmethod
    def architecture_config(self) -> dict[str, Any]:
        """The config that ``from_config`` needs to rebuild this component's architecture."""
