"""medzoo conversations as transformers chat messages: ``{"type": "image"}`` and ``{"type": "text"}`` parts.

medzoo marks the image in a prompt with ``<image>`` (LLaVA-Med's ``<image>\\n{question}``); a transformers
processor's chat template places the image itself, so the placeholder becomes an image part where it stood and
only the question text is sent as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from medzoo import IMAGE_PLACEHOLDER, DataError, Message

if TYPE_CHECKING:
    from medzoo import ChatRequest


def image_part(image: Any) -> dict[str, Any]:
    return {"type": "image", "image": image.convert("RGB")}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _parts(message: Message, images: list[Any]) -> list[dict[str, Any]]:
    pieces = message.content.split(IMAGE_PLACEHOLDER)
    parts: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        if index:
            if not images:
                raise DataError(f"a {message.role} turn has more {IMAGE_PLACEHOLDER} placeholders than the request "
                                "has images")
            parts.append(image_part(images.pop(0)))
        if piece.strip():
            parts.append(text_part(piece.strip()))
    return parts


def chat_messages(messages: Sequence[Message], images: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The conversation as transformers chat messages; images without a placeholder go first in the first user
    turn (where LLaVA-Med's prompts put them)."""
    left = list(images)
    converted = [{"role": message.role, "content": _parts(message, left)} for message in messages]
    if left:
        first_user = next((m for m in converted if m["role"] == "user"), None)
        if first_user is None:
            raise DataError("a request with an image needs a user turn to show it in")
        first_user["content"][:0] = [image_part(image) for image in left]
    return converted


def request_messages(request: ChatRequest) -> list[dict[str, Any]]:
    return chat_messages(request.messages, request.images)
