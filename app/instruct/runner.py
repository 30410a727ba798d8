"""Running many backend requests: bounded concurrency, timeouts, retries with backoff, ``Retry-After``, caching."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from medzoo.app.instruct.cache import ResponseCache, cache_key
from medzoo.core.interfaces.instruct_backend import (
    BackendError,
    BackendReply,
    InstructBackend,
    TransientBackendError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request, exponential backoff, per-attempt timeout (None: no limit)."""

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    timeout: float | None = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt ``attempt + 1``: base * 2**(attempt-1), capped, with jitter in [0.5, 1]."""
        return min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max) * rng.uniform(0.5, 1.0)


@dataclass
class RequestOutcome:
    """What became of one request: a completion (fresh or cached) or the last error."""

    completion: BackendReply | None
    cached: bool = False
    attempts: int = 0
    error: str | None = None


@dataclass
class UsageStats:
    """Counts over a run; tokens are those of fresh (paid) responses only."""

    requests_sent: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_sent": self.requests_sent,
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "failed_requests": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
        }


class RequestRunner:
    """Sends chat requests through a backend, at most ``concurrency`` at a time, caching every reply on disk."""

    def __init__(
        self,
        backend: InstructBackend,
        cache: ResponseCache | None,
        concurrency: int = 4,
        policy: RetryPolicy | None = None,
        seed: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.cache = cache
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy()
        self.stats = UsageStats()
        self._rng = random.Random(seed)
        self._semaphore: asyncio.Semaphore | None = None
        self._in_flight: dict[str, asyncio.Future[RequestOutcome]] = {}
        self._paused_until = 0.0

    def key(self, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
        return cache_key(self.backend.name, self.backend.model, messages, params)

    async def request(self, messages: list[dict[str, str]], **params: Any) -> RequestOutcome:
        """One completion, from the cache when present; identical concurrent requests share one call."""
        key = self.key(messages, params)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                return RequestOutcome(cached, cached=True)
        shared = self._in_flight.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[RequestOutcome] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            outcome = await self._send_with_retries(key, messages, params)
            future.set_result(outcome)
            return outcome
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._in_flight[key]

    async def _send_with_retries(
        self, key: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> RequestOutcome:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        last_error = "no attempt made"
        for attempt in range(1, self.policy.max_attempts + 1):
            retry_after: float | None = None
            async with self._semaphore:
                await self._wait_for_pause()
                self.stats.requests_sent += 1
                try:
                    completion = await asyncio.wait_for(
                        self.backend.complete(messages, **params), timeout=self.policy.timeout
                    )
                except TransientBackendError as error:
                    last_error, retry_after = str(error), error.retry_after
                    reason = error.reason
                except (asyncio.TimeoutError, TimeoutError):
                    last_error, reason = f"no reply within {self.policy.timeout} s", "timeout"
                except ConnectionError as error:
                    last_error, reason = f"connection error: {error}", "connection"
                except BackendError as error:
                    self.stats.failures += 1
                    return RequestOutcome(None, attempts=attempt, error=str(error))
                except Exception as error:  # a third-party backend's own failure: report, never crash the run
                    self.stats.failures += 1
                    return RequestOutcome(None, attempts=attempt, error=f"{type(error).__name__}: {error}")
                else:
                    self.stats.prompt_tokens += completion.prompt_tokens
                    self.stats.completion_tokens += completion.completion_tokens
                    if self.cache is not None:
                        self.cache.put(key, completion, {"model": self.backend.model})
                    return RequestOutcome(completion, attempts=attempt)
            self.stats.retry_reasons[reason] = self.stats.retry_reasons.get(reason, 0) + 1
            if attempt == self.policy.max_attempts:
                break
            self.stats.retries += 1
            if retry_after is not None:
                delay = min(retry_after, self.policy.max_retry_after)
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
            else:
                delay = self.policy.backoff(attempt, self._rng)
            logger.info("retrying in %.2f s after %s (attempt %d)", delay, last_error, attempt)
            await asyncio.sleep(delay)
        self.stats.failures += 1
        return RequestOutcome(None, attempts=self.policy.max_attempts, error=last_error)

    async def _wait_for_pause(self) -> None:
        """A server's ``Retry-After`` holds back every request of the run, not only the one that got it."""
        remaining = self._paused_until - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
