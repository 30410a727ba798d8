"""Conversations and the templates that render them into model text with trainable spans marked."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass
class RenderedConversation:
    """Rendered text plus the character spans the loss is computed on (assistant replies)."""

    text: str
    target_spans: list[tuple[int, int]] = field(default_factory=list)


class TextBuilder:
    """Accumulates text, remembering which character spans are training targets."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.spans: list[tuple[int, int]] = []

    def add(self, text: str, target: bool = False) -> None:
        if target and text:
            self.spans.append((self._length, self._length + len(text)))
        self._parts.append(text)
        self._length += len(text)

    def build(self) -> RenderedConversation:
        return RenderedConversation("".join(self._parts), list(self.spans))


class ConversationTemplate(ABC):
    """Renders messages the way one language model was trained to read them."""

    name: str = "template"
    #: strings at which generation stops (besides the tokenizer's EOS)
    stop_strings: tuple[str, ...] = ()

    @abstractmethod
    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        """Render ``messages``; assistant replies (and their end marker) become target spans.

        With ``add_generation_prompt`` the text ends where the assistant's next reply starts.
        The tokenizer adds BOS itself.
        """

    def prompt(self, messages: Sequence[Message], eos_token: str) -> str:
        return self.render(messages, eos_token, add_generation_prompt=True).text


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """Separate a leading system message from the turns."""
    if messages and messages[0].role == "system":
        return messages[0].content, list(messages[1:])
    return None, list(messages)
