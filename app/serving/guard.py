"""ASGI middleware run before any route: Host check (DNS rebinding), API key, request body size."""

from __future__ import annotations

import hmac
import json

from starlette.exceptions import HTTPException

from medzoo.app.serving.limits import error_body

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class BodyTooLarge(HTTPException):
    """The request body grew past the limit while being read (an HTTPException, so frameworks pass it on)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class RequestGuard:
    """Refuses requests before they reach the app: unknown Host (when set), missing/wrong API key
    (every path except the static chat page), bodies over ``max_body_bytes`` (declared or streamed)."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None = None,
                 allowed_hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _send_json(send, *refusal)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, self._too_large())

    def _refusal(self, scope, headers: dict[str, str]) -> tuple[int, dict] | None:
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return 400, error_body("Host header not allowed for this server", code="host_not_allowed")
        public_page = scope["method"] in ("GET", "HEAD") and scope["path"] == "/"
        if self.api_key is not None and not public_page:
            supplied = headers.get("authorization", "")
            expected = f"Bearer {self.api_key}"
            if not hmac.compare_digest(supplied.encode(), expected.encode()):
                return 401, error_body("missing or invalid API key (send Authorization: Bearer KEY)",
                                       code="invalid_api_key")
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return 413, self._too_large()
        return None

    def _too_large(self) -> dict:
        return error_body(f"request body is larger than {self.max_body_bytes} bytes", code="request_too_large")


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
