"""medzoo conversations as OpenAI chat messages: each image an ``image_url`` part holding a PNG data URL, placed
where its ``<image>`` placeholder stood (several images: several parts), the text as ``text`` parts."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from medzoo.plugins.contenders.hf_messages import request_messages

if TYPE_CHECKING:
    from medzoo import ChatRequest


def data_url(image: Any) -> str:
    """``data:image/png;base64,...`` of a PIL image (lossless, so the endpoint sees the benchmark's pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _openai_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "image":
        return {"type": "image_url", "image_url": {"url": data_url(part["image"])}}
    return {"type": "text", "text": part["text"]}


def openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request as ``/v1/chat/completions`` messages; a turn of text only is sent as a plain string."""
    messages = []
    for message in request_messages(request):
        parts = [_openai_part(part) for part in message["content"]]
        if all(part["type"] == "text" for part in parts):
            content: Any = "\n".join(part["text"] for part in parts)
        else:
            content = parts
        messages.append({"role": message["role"], "content": content})
    return messages
