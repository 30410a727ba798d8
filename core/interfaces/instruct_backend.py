"""The instruction-generation backend interface: a text-only chat model used to write or judge conversations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


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
