"""The OpenAI chat completions format: request models (validated by pydantic) and response builders."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from medzoo.core.inference import Completion


class _Lenient(BaseModel):
    #: fields this server does not use (``user``, ``logprobs``...) are accepted and ignored
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str
    detail: str | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    #: the ranges of max_tokens, temperature, top_p and seed are checked in ``prepare`` (one line naming the
    #: field, its value and the allowed range)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    seed: int | None = None


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(completion: Completion) -> dict:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def completion_response(completion_id: str, model: str, completion: Completion) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": completion.finish_reason,
            "logprobs": None,
        }],
        "usage": usage(completion),
    }


def chunk(completion_id: str, model: str, delta: dict, finish_reason: str | None = None,
          usage_info: dict | None = None) -> dict:
    """One streamed ``chat.completion.chunk``; with ``usage_info`` the chunk has no choices (OpenAI's last chunk)."""
    body = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    if usage_info is not None:
        return {**body, "choices": [], "usage": usage_info}
    return {**body, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


def models_response(model: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "medzoo"}]}
