"""Any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI v1, vLLM, ``medzoo serve``) over plain httpx."""

from __future__ import annotations

import email.utils
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from medzoo import BackendError, BackendReply, InstructBackend, PluginError, TransientBackendError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MALFORMED = "malformed response"


def chat_completions_url(base_url: str) -> str:
    """``.../v1`` -> ``.../v1/chat/completions``; a bare host gets ``/v1``; a full endpoint URL is kept."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if urlsplit(base).path in ("", "/"):
        base += "/v1"
    return f"{base}/chat/completions"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def completion_from_body(body: Any) -> BackendReply:
    """The first choice's text and the ``usage`` token counts; raises on a body of the wrong shape."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise TransientBackendError("response has no choices[0].message.content", reason=MALFORMED) from None
    if not isinstance(content, str):
        raise TransientBackendError("choices[0].message.content is not a string", reason=MALFORMED)
    usage = body.get("usage") or {}
    return BackendReply(
        text=content,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


class OpenAIBackend(InstructBackend):
    """POSTs to ``{base_url}/chat/completions`` with a bearer key (``api-key`` too for Azure hosts).

    Options: ``base_url`` (else ``$OPENAI_BASE_URL``, else api.openai.com), ``api_key`` (else
    ``$OPENAI_API_KEY``; may be empty for local servers), ``timeout`` seconds per request, ``extra_body``
    (dict merged into every request, e.g. vLLM sampling extras).
    """

    name = "openai"
    request_timeout: float | None = 120.0

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, base_url=base_url, timeout=timeout)
        if not model:
            raise PluginError("openai backend: --model is required (the model name the endpoint serves)")
        self.base_url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        self.url = chat_completions_url(self.base_url)
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        self.request_timeout = float(timeout)
        self.extra_body = dict(extra_body or {})
        self._client: httpx.AsyncClient | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
            if (urlsplit(self.url).hostname or "").endswith(".azure.com"):
                headers["api-key"] = self.api_key
        return headers

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self.request_timeout, headers=self.headers())
        return self._client

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> BackendReply:
        payload = {"model": self.model, "messages": messages, **self.extra_body, **params}
        try:
            response = await self._http().post(self.url, json=payload)
        except httpx.TimeoutException as error:
            raise TransientBackendError(f"{self.url}: timed out ({type(error).__name__})", reason="timeout") from None
        except httpx.TransportError as error:
            raise TransientBackendError(f"{self.url}: {type(error).__name__}: {error}", reason="connection") from None
        status = response.status_code
        if status == 429 or status >= 500 or status in RETRYABLE_STATUS:
            raise TransientBackendError(
                f"{self.url}: HTTP {status}: {response.text[:200]}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                status=status,
            )
        if status >= 400:
            raise BackendError(f"{self.url}: HTTP {status}: {response.text[:300]}")
        try:
            body = response.json()
        except json.JSONDecodeError:
            raise TransientBackendError(
                f"{self.url}: response is not json: {response.text[:100]!r}", reason=MALFORMED
            ) from None
        return completion_from_body(body)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
