"""The FastAPI app: OpenAI-compatible chat completions (plain and streamed), models, health, the chat page."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from medzoo.app.serving.batcher import BatchingSettings, DynamicBatcher, QueueFull
from medzoo.app.serving.guard import LOOPBACK_HOSTS, RequestGuard
from medzoo.app.serving.images import ImageLoader
from medzoo.app.serving.limits import RequestError, ServeLimits, error_body
from medzoo.app.serving.openai_schema import (
    ChatCompletionRequest,
    chunk,
    completion_response,
    models_response,
    new_id,
    usage,
)
from medzoo.app.serving.prepare import prepare
from medzoo.core.inference import Completion, InferenceEngine, RowRequest

PAGE_SECURITY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src data: blob:; base-uri 'none'; form-action 'none'"
)


@dataclass
class ServeConfig:
    model_name: str
    api_key: str | None = None
    image_folder: str | Path | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    #: accept only these Host header names (None: any); loopback names when bound to loopback
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS


class AsyncJob:
    """A batcher job whose results are delivered to an asyncio queue (from the worker thread)."""

    def __init__(self, row: RowRequest, stream: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.row = row
        self.loop = loop
        self.events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        #: the HTTP status of the error, when the row failed
        self.status = 500
        if stream:
            row.on_text = lambda text: self._put("text", text)

    def _put(self, kind: str, value: object) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    def on_done(self, completion: Completion) -> None:
        self._put("done", completion)

    def on_error(self, message: str, status: int = 500) -> None:
        self.status = status
        self._put("error", message)

    def cancel(self) -> None:
        self.row.cancelled.set()


def create_app(engine: InferenceEngine, config: ServeConfig) -> FastAPI:
    """The server app; the batcher's worker thread runs while the app is up (lifespan)."""
    batcher = DynamicBatcher(engine, config.batching)
    app = FastAPI(title="medzoo", lifespan=_lifespan(batcher), docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher
    app.state.config = config
    app.add_middleware(RequestGuard, max_body_bytes=config.limits.max_body_bytes, api_key=config.api_key,
                       allowed_hosts=config.allowed_hosts)
    _add_error_handlers(app)
    _add_info_routes(app, config, batcher)
    _add_chat_route(app, engine, config, batcher)
    return app


def _lifespan(batcher: DynamicBatcher):
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(batcher.stop)

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's ``{"error": {...}}`` form."""

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(validation_message(error)), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(error.detail), kind), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def crashed(_: Request, error: Exception) -> JSONResponse:
        message = f"internal error: {type(error).__name__}"
        return JSONResponse(error_body(message, "server_error"), status_code=500)


def _add_info_routes(app: FastAPI, config: ServeConfig, batcher: DynamicBatcher) -> None:
    """``/health``, ``/v1/models`` and the chat page at ``/``."""
    created = int(time.time())

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": config.model_name, "pending": batcher.pending,
                "requests_done": batcher.requests_done, "recent_batch_sizes": list(batcher.batch_sizes)[-20:]}

    @app.get("/v1/models")
    async def models() -> dict:
        return models_response(config.model_name, created)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        html = resources.files("medzoo.app.serving").joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_SECURITY, "X-Frame-Options": "DENY"})


def _add_chat_route(app: FastAPI, engine: InferenceEngine, config: ServeConfig, batcher: DynamicBatcher) -> None:
    """``POST /v1/chat/completions``: check, prepare and queue the request, then answer plainly or streamed."""
    loader = ImageLoader(config.limits, config.image_folder)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest):
        if request.model != config.model_name:
            raise RequestError(404, f"model {request.model!r} is not served here; this server serves "
                               f"{config.model_name!r}", param="model", code="model_not_found")
        job = await _submit(request, engine, loader, config, batcher)
        if request.stream:
            return _streamed(job, request, config.model_name)
        return await _answered(job, config.model_name)


async def _submit(request: ChatCompletionRequest, engine: InferenceEngine, loader: ImageLoader,
                  config: ServeConfig, batcher: DynamicBatcher) -> AsyncJob:
    """Prepare the request off the event loop and queue it (503 when the queue is full)."""
    with batcher.preparing():
        prepared = await run_in_threadpool(prepare, request, engine, loader, config.limits)
        job = AsyncJob(RowRequest(prepared.sample, prepared.settings), request.stream, asyncio.get_running_loop())
        try:
            batcher.submit(job)
        except QueueFull as error:
            raise RequestError(503, str(error), code="server_busy", kind="server_error") from None
    return job


def _streamed(job: AsyncJob, request: ChatCompletionRequest, model: str) -> StreamingResponse:
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return StreamingResponse(
        sse_events(job, new_id(), model, include_usage), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _answered(job: AsyncJob, model: str) -> dict:
    completion_id = new_id()
    try:
        kind, value = await _final_event(job)
    finally:
        job.cancel()
    if kind == "error":
        if job.status < 500:
            raise RequestError(job.status, str(value))
        raise RequestError(job.status, str(value), kind="server_error")
    return completion_response(completion_id, model, value)


async def _final_event(job: AsyncJob) -> tuple[str, object]:
    while True:
        kind, value = await job.events.get()
        if kind in ("done", "error"):
            return kind, value


async def sse_events(job: AsyncJob, completion_id: str, model: str, include_usage: bool) -> AsyncIterator[str]:
    """OpenAI's stream: a role chunk, content chunks, a finish chunk (+ usage), then ``data: [DONE]``."""

    def event(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield event(chunk(completion_id, model, {"role": "assistant", "content": ""}))
        while True:
            kind, value = await job.events.get()
            if kind == "text":
                yield event(chunk(completion_id, model, {"content": value}))
            elif kind == "done":
                yield event(chunk(completion_id, model, {}, finish_reason=value.finish_reason))
                if include_usage:
                    yield event(chunk(completion_id, model, {}, usage_info=usage(value)))
                break
            else:
                yield event(error_body(str(value), "server_error" if job.status >= 500 else "invalid_request_error"))
                break
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()


def validation_message(error: RequestValidationError) -> str:
    """One line naming the first problem: ``messages.0.role: Input should be 'system', ...``."""
    first = error.errors()[0] if error.errors() else {}
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON"
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = first.get("msg", "invalid request")
    return f"{location}: {message}" if location else message
