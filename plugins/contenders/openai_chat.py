"""The ``openai`` contender: any model served behind an OpenAI-compatible chat endpoint (vLLM, SGLang, TGI,
``medzoo serve``, a hosted API) answering benchmarks, so a model too large for one process ranks beside medzoo's.

``medzoo eval MODEL --contender openai --contender-option base_url=http://host:8000/v1``: MODEL is the model id
the endpoint serves. Each question is one ``/chat/completions`` request (images as PNG data URLs in ``image_url``
parts, where their placeholders stood), at most ``concurrency`` at a time; each answer is handed to the
evaluation as it arrives, so the answer file holds every answer received before a run was killed and a rerun
asks only the rest. The API key is read from the environment variable ``api_key_env`` names and never recorded.
The endpoint asks with the served model's own chat template: the prompt template is recorded as
``chat_template@endpoint``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from medzoo import Answerer, DataError, PluginError, PromptChoice, check_multi_image_policy
from medzoo.plugins.contenders.openai_messages import openai_messages

if TYPE_CHECKING:  # httpx loads when the contender does, not when the plugin registers
    from medzoo import Benchmark, ChatRequest, SamplingSettings
    from medzoo.plugins.contenders.openai_endpoint import ChatEndpoint

BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
TEMPLATE = "chat_template@endpoint"


def _number(name: str, value: Any, kind: type, minimum: float) -> Any:
    """An option given as text on the command line (``concurrency=8``) as ``kind``, at least ``minimum``."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise PluginError(f"contender openai: option {name}={value!r}: expected a {kind.__name__} >= {minimum:g}")
    return number


def _extra_body(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict):
        raise PluginError("contender openai: option extra_body: expected a JSON object (e.g. "
                          "extra_body='{\"top_k\": 1}') merged into every request")
    return value


def reply_text(body: Any, where: str) -> tuple[str, str | None]:
    """(the first choice's text, the model id the reply names) of a chat completion body; a PluginError saying
    what is missing when the body is not one."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise PluginError(f"{where}: the reply is not an OpenAI chat completion (no choices[0].message.content); "
                          "is this an OpenAI-compatible endpoint (base_url ending in /v1)?") from None
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise PluginError(f"{where}: choices[0].message.content is a {type(content).__name__}, expected text")
    model = body.get("model") if isinstance(body, dict) else None
    return content.strip(), model if isinstance(model, str) else None


class _Stopped(Exception):
    """A request left unsent because another one failed for good."""


class OpenAIContender(Answerer):
    """A model behind an OpenAI-compatible chat endpoint."""

    def __init__(self, model: str, endpoint: ChatEndpoint, concurrency: int, api_key_env: str,
                 extra_body: dict[str, Any]) -> None:
        self.model_id = model
        self.requested_model = model
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.api_key_env = api_key_env
        self.extra_body = extra_body
        self.served_models: set[str] = set()
        self.decoding: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls,
        source: str,
        base_url: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        concurrency: int | str = 8,
        max_attempts: int | str = 5,
        backoff: float | str = 1.0,
        max_retry_after: float | str = 120.0,
        timeout: float | str = 300.0,
        extra_body: dict[str, Any] | str | None = None,
        api_key: str | None = None,
        multi_image: str = "all",
    ) -> OpenAIContender:
        """``source``: the model id the endpoint serves; ``base_url`` (else ``$OPENAI_BASE_URL``): the endpoint,
        e.g. ``http://localhost:8000/v1``; ``api_key_env``: the environment variable holding the key (unset or
        empty: no key, as local servers take); ``multi_image``: ``all`` (several ``image_url`` parts, each where
        its placeholder stood), or for an endpoint that takes one image ``first`` / ``refuse``."""
        several = check_multi_image_policy(multi_image, "contender openai: option multi_image")
        if api_key is not None:
            raise PluginError("contender openai: option api_key: a key is never given on the command line (it would "
                              f"be recorded); put it in an environment variable and pass api_key_env=NAME (default "
                              f"{DEFAULT_KEY_ENV})")
        if not source:
            raise PluginError("contender openai: MODEL must be the model id the endpoint serves")
        base_url = base_url or os.environ.get(BASE_URL_ENV)
        if not base_url:
            raise PluginError(f"contender openai: no endpoint; pass --contender-option base_url=http://HOST:PORT/v1 "
                              f"(or set ${BASE_URL_ENV})")
        if not base_url.startswith(("http://", "https://")):
            raise PluginError(f"contender openai: option base_url={base_url!r}: expected an http:// or https:// URL")
        if not api_key_env.replace("_", "").isalnum():
            raise PluginError(f"contender openai: option api_key_env={api_key_env!r}: expected the name of an "
                              "environment variable (the key itself is never passed)")
        from medzoo.plugins.contenders.openai_endpoint import ChatEndpoint, RetryPolicy

        policy = RetryPolicy(
            max_attempts=_number("max_attempts", max_attempts, int, 1),
            backoff=_number("backoff", backoff, float, 0),
            max_retry_after=_number("max_retry_after", max_retry_after, float, 0),
        )
        endpoint = ChatEndpoint(base_url, os.environ.get(api_key_env, ""), _number("timeout", timeout, float, 0.001),
                                policy)
        contender = cls(source, endpoint, _number("concurrency", concurrency, int, 1), api_key_env,
                        _extra_body(extra_body) if extra_body is not None else {})
        contender.multi_image = several
        return contender

    # -- the answerer interface ---------------------------------------------------------------------------------
    def weights_fingerprint(self) -> str:
        """The weights behind an endpoint are unknown to medzoo: the served model id and the extra request fields
        stand for them (a rerun against the same model id resumes, whatever host serves it)."""
        described = json.dumps({"model": self.requested_model, "extra_body": self.extra_body}, sort_keys=True)
        return "endpoint:" + hashlib.sha256(described.encode("utf-8")).hexdigest()

    def prompt_for(self, benchmark: Benchmark, requested: str | None) -> PromptChoice:
        if requested not in (None, TEMPLATE, "chat_template"):
            raise DataError(f"benchmark option prompt_template={requested!r}: the openai contender asks with the "
                            "served model's own chat template; leave the option out")
        return PromptChoice(TEMPLATE)

    def answer(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> list[str]:
        answers: dict[int, str] = {}
        for group in self.answer_groups(requests, settings, template, batch_size):
            answers.update(group)
        return [answers[index] for index in range(len(requests))]

    def answer_groups(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> Iterator[list[tuple[int, str]]]:
        """Each answer as it arrives; the first request that fails for good stops the rest (answers already
        yielded stay written) and is raised as a one-line PluginError."""
        if template != TEMPLATE:
            raise DataError(f"the openai contender answers with {TEMPLATE}, not {template!r}")
        parameters = self.parameters(settings)
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="medzoo-openai")
        try:
            pending: dict[Future[str], int] = {
                pool.submit(self._ask, request, parameters, stop): index for index, request in enumerate(requests)
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                failed = [future for future in done if future.exception() is not None
                          and not isinstance(future.exception(), _Stopped)]
                if failed:
                    raise failed[0].exception()
                for future in done:
                    index = pending.pop(future)
                    if future.exception() is None:
                        yield [(index, future.result())]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.endpoint.close()

    def _ask(self, request: ChatRequest, parameters: dict[str, Any], stop: threading.Event) -> str:
        """One answer; a request not sent yet when another failed for good is not sent at all."""
        if stop.is_set():
            raise _Stopped
        payload = {"model": self.requested_model, "messages": openai_messages(request), **parameters}
        try:
            text, served = reply_text(self.endpoint.complete(payload), self.endpoint.shown)
        except BaseException:
            stop.set()
            raise
        if served:
            with self._lock:
                self.served_models.add(served)
        return text

    def parameters(self, settings: SamplingSettings) -> dict[str, Any]:
        """The decoding fields of every request (greedy: temperature 0), recorded in metrics.json."""
        decoding: dict[str, Any] = {"max_tokens": settings.max_new_tokens,
                                    "temperature": 0.0 if settings.greedy else settings.temperature,
                                    "top_p": 1.0 if settings.greedy else settings.top_p}
        if settings.seed is not None:
            decoding["seed"] = settings.seed
        if settings.stop:
            decoding["stop"] = list(settings.stop)
        decoding.update(self.extra_body)
        self.decoding = decoding
        return decoding

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint.shown,
            "requested_model": self.requested_model,
            "served_model": sorted(self.served_models)[0] if len(self.served_models) == 1
            else sorted(self.served_models) or None,
            "decoding": self.decoding,
            "concurrency": self.concurrency,
            "max_attempts": self.endpoint.policy.max_attempts,
            "api_key_env": self.api_key_env,
            "requests": self.endpoint.counts.as_dict(),
        }
