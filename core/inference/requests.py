"""What the engine is asked and what it answers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from medzoo.core.inference.settings import SamplingSettings
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.processor import EncodedSample


@dataclass
class ChatRequest:
    """A conversation (and its images) whose next assistant reply is wanted: ``image`` is the first image,
    ``extra_images`` the others, in the order of the conversation's ``<image>`` placeholders."""

    messages: list[Message]
    image: Image.Image | None = None
    extra_images: list[Image.Image] = field(default_factory=list)

    @property
    def images(self) -> list[Image.Image]:
        return [self.image, *self.extra_images] if self.image is not None else []


@dataclass
class RowRequest:
    """An encoded prompt plus how to answer it; ``on_text`` receives answer text as it is generated."""

    sample: EncodedSample
    settings: SamplingSettings
    on_text: Callable[[str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: set once some of the answer has gone to ``on_text`` (such a row cannot be generated again from scratch)
    streamed: bool = False


@dataclass
class Completion:
    """One answer of the engine."""

    text: str
    #: "stop" (end of sequence or a stop string), "length" (token budget) or "cancelled"
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    #: the generated token ids (through the end-of-sequence token or the token that completed a stop string)
    token_ids: tuple[int, ...] = ()
