"""The instruction-generation backend interface: a text-only chat model used to write or judge conversations,
and the two failures a backend raises so the request runner knows whether to retry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


class BackendError(Exception):
    """A backend request failed in a way that retrying will not fix (bad request, auth, unknown model)."""


class TransientBackendError(BackendError):
    """A backend request failed in a way that may pass on retry (timeout, 429, 5xx, garbled body).

    ``retry_after`` holds the server's requested wait in seconds when it sent one; ``reason`` is a short
    label for the run summary ("http 429", "timeout", "malformed response", "connection").
    """

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.reason = reason or (f"http {status}" if status else "transient error")


@dataclass
class BackendReply:
    """A text-only backend's answer to one chat request, with its token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class InstructBackend(ABC):
    """Answers chat messages (``[{"role": ..., "content": ...}]``) with one completion."""

    name: str = "backend"

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    @abstractmethod
    async def complete(self, messages: list[dict[str, str]], **params: Any) -> BackendReply:
        """One chat completion; raises on transport errors so the caller can retry."""

    async def aclose(self) -> None:
        """Release connections or other resources; called once when a run ends (default: nothing to do)."""
        return None
