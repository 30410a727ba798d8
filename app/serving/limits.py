"""What a request may ask for, and the error every refusal raises (rendered in OpenAI's error shape)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 20 * 1024 * 1024
    #: size of one image's encoded bytes (after base64 decoding)
    max_image_bytes: int = 10 * 1024 * 1024
    #: width x height of one image, checked from the header before decoding (decompression bombs)
    max_image_pixels: int = 4096 * 4096
    max_images_per_request: int = 1
    max_messages: int = 64
    max_tokens_cap: int = 1024
    default_max_tokens: int = 256
    max_stop_strings: int = 4
    #: characters of text in one request, checked before anything is tokenised (None: 8 x the model's context)
    max_prompt_chars: int | None = None
    #: the largest temperature accepted (0 is greedy; the smallest sampling one is ``MIN_TEMPERATURE``)
    max_temperature: float = 2.0

    def prompt_chars(self, context_length: int) -> int:
        return self.max_prompt_chars if self.max_prompt_chars is not None else 8 * context_length


class RequestError(Exception):
    """A request the server refuses: HTTP status plus an OpenAI-style error body."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
