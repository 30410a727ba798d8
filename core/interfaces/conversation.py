"""Conversations and the templates that render them into model text with trainable spans marked."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ImagePlacement = Literal["keep", "front", "end"]
IMAGE_PLACEMENTS = ("keep", "front", "end")
#: exact: labels on exactly the assistant replies; official: the template's official masking
LABEL_MASKINGS = ("exact", "official")
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

    def add(self, text: str, target: bool = False, extend: bool = False) -> None:
        """Append ``text``; ``target`` marks it trained, ``extend`` joins it to a target span ending here."""
        if target and text:
            if extend and self.spans and self.spans[-1][1] == self._length:
                self.spans[-1] = (self.spans[-1][0], self._length + len(text))
            else:
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
    #: where ``<image>`` goes in its user turn before rendering (see :func:`place_images`)
    image_placement: ImagePlacement = "keep"
    #: template and decoding that benchmarks use by default for models trained with this template
    #: (``None``: this template, greedy); e.g. LLaVA-Med v1.0's own evaluation prompt
    evaluation_template: str | None = None
    evaluation_decoding: dict | None = None

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

    def for_tokenizer(self, tokenizer: Any) -> ConversationTemplate:
        """This template as used with ``tokenizer``. Most templates are fixed text and return themselves; one
        that reads the tokenizer (``chat_template``: its Jinja chat template) returns a copy bound to it. Every
        place that renders prompts or stops generation (the processor) binds first."""
        return self


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """Separate a leading system message from the turns."""
    if messages and messages[0].role == "system":
        return messages[0].content, list(messages[1:])
    return None, list(messages)


def place_images(messages: Sequence[Message], placement: str) -> list[Message]:
    """Move the ``<image>`` placeholder of every user turn that has one.

    ``keep``: leave it where the data put it (LLaVA-Med v1.0 ``preprocess_multimodal``);
    ``front``: ``<image>\n`` + the rest of the turn, stripped (haotian-liu/LLaVA ``llava/train/train.py``
    ``preprocess_multimodal``, LLaVA-1.5 and LLaVA-Med v1.5 ``model_vqa.py``);
    ``end``: the turn, stripped, + ``\n<image>`` (LLaVA-Med v1.0.0 ``llava/eval/model_vqa_med.py``).
    The official code handles one image per conversation: a turn with several images keeps them in place.
    """
    if placement not in IMAGE_PLACEMENTS:
        raise ValueError(f"image_placement {placement!r}: expected one of {', '.join(IMAGE_PLACEMENTS)}")
    if placement == "keep":
        return list(messages)
    placed = []
    for message in messages:
        content = message.content
        if message.role == "user" and content.count(IMAGE_PLACEHOLDER) == 1:
            rest = content.replace(IMAGE_PLACEHOLDER, "").strip()
            content = f"{IMAGE_PLACEHOLDER}\n{rest}" if placement == "front" else f"{rest}\n{IMAGE_PLACEHOLDER}"
        placed.append(Message(message.role, content))
    return placed
