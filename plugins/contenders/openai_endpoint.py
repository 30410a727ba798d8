"""One OpenAI-compatible ``/chat/completions`` endpoint, asked from several threads with retries.

A failure that may pass (a connection error or timeout, HTTP 408/409/425/429 or 5xx) is retried up to
``max_attempts`` times with exponential backoff (``backoff`` * 2**(attempt-1) seconds, at most ``backoff_max``,
times a jitter in [0.5, 1]); a ``Retry-After`` header is honoured (at most ``max_retry_after`` seconds) and holds
back every thread, not only the one that got it. Anything else (a refused key, an unknown model, a reply that is
not a chat completion) is a one-line PluginError at once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from medzoo import PluginError
from medzoo.plugins.instruct.backends.openai_backend import chat_completions_url, parse_retry_after

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
NOT_OPENAI = "is this an OpenAI-compatible endpoint (base_url ending in /v1)?"


def shown_url(url: str) -> str:
    """``url`` without user name, password, query or fragment (what may be printed and recorded)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _first_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line[:limit] + ("..." if len(line) > limit else "")


class Transient(Exception):
    """A failure worth retrying: ``reason`` for the counts, ``retry_after`` as the server asked (seconds)."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.backoff_max) * rng.uniform(0.5, 1.0)


@dataclass
class Counts:
    """Requests sent and retried, by reason (recorded in metrics.json)."""

    requests_sent: int = 0
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"requests_sent": self.requests_sent, "retries": self.retries,
                "retry_reasons": dict(sorted(self.retry_reasons.items()))}


class ChatEndpoint:
    """POSTs chat completion requests to ``base_url`` with an optional bearer key; thread-safe."""

    def __init__(self, base_url: str, api_key: str, timeout: float, policy: RetryPolicy, seed: int = 0) -> None:
        self.url = chat_completions_url(base_url)
        self.shown = shown_url(self.url)
        self.api_key = api_key
        self.timeout = timeout
        self.policy = policy
        self.counts = Counts()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    # -- one request ------------------------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            client = self._local.client = httpx.Client(timeout=self.timeout, headers=headers)
            with self._lock:
                self._clients.append(client)
        return client

    def _send(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client().post(self.url, json=payload)
        except httpx.TimeoutException:
            raise Transient(f"{self.shown}: no reply within {self.timeout:g} s", "timeout") from None
        except httpx.TransportError as error:
            raise Transient(f"{self.shown}: cannot reach the endpoint ({type(error).__name__}: "
                            f"{_first_line(str(error)) or 'no detail'})", "connection") from None
        status = response.status_code
        if status == 429 or status >= 500 or status in RETRYABLE_STATUS:
            raise Transient(f"{self.shown}: HTTP {status}: {_first_line(response.text)}", f"http {status}",
                            parse_retry_after(response.headers.get("retry-after")))
        if status in (401, 403):
            raise PluginError(f"{self.shown}: HTTP {status}: the endpoint refused the API key "
                              f"({_first_line(response.text)})")
        if status >= 400:
            raise PluginError(f"{self.shown}: HTTP {status}: {_first_line(response.text)}"
                              + ("; " + NOT_OPENAI if status in (404, 405) else ""))
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PluginError(f"{self.shown}: the reply is not JSON ({_first_line(response.text, 60)!r}); "
                              f"{NOT_OPENAI}") from None
        return body

    # -- retries ------------------------------------------------------------------------------------------------
    def complete(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The reply body of one request, retried as the policy says; a PluginError when it cannot be had."""
        for attempt in range(1, self.policy.max_attempts + 1):
            self._wait_for_pause()
            with self._lock:
                self.counts.requests_sent += 1
            try:
                return self._send(payload)
            except Transient as failure:
                with self._lock:
                    self.counts.retry_reasons[failure.reason] = self.counts.retry_reasons.get(failure.reason, 0) + 1
                if attempt == self.policy.max_attempts:
                    raise PluginError(f"{failure} (gave up after {attempt} attempts)") from None
                with self._lock:
                    self.counts.retries += 1
                    if failure.retry_after is not None:
                        wait = min(failure.retry_after, self.policy.max_retry_after)
                        self._paused_until = max(self._paused_until, time.monotonic() + wait)
                        continue
                    wait = self.policy.delay(attempt, self._rng)
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_pause(self) -> None:
        """A server's ``Retry-After`` holds back every thread of the evaluation."""
        while (remaining := self._paused_until - time.monotonic()) > 0:
            time.sleep(remaining)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()
