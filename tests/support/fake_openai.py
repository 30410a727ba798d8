"""A scripted OpenAI-compatible chat server for tests: 127.0.0.1, port 0, stdlib only.

Each request takes the next scripted behaviour (a reply, a malformed body, an HTTP status with headers,
a hang until the server stops, a block until released, a reply held open a while); when the script is empty the
``responder`` answers, and after ``block_after`` requests every further one is blocked. The server records
every request with its arrival time, counts replies delivered per prompt, and refuses to serve more than
``max_requests`` (a test that loops forever fails instead of hanging).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.hang_guard import SUBPROCESS_HANG_S


@dataclass
class Reply:
    text: str
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class Malformed:
    body: str = "this is not json"


@dataclass
class Status:
    code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"error": {"message": "scripted failure"}}'


@dataclass
class Hang:
    """Answer (504) only when the server stops, or after ``limit`` seconds: a client with a timeout gives up first,
    and ``hangs_answered`` stays 0 until the server stops."""

    limit: float = SUBPROCESS_HANG_S


@dataclass
class Block:
    """Hold the request until the server stops (or ``limit`` seconds pass), then drop it."""

    limit: float = 10.0


@dataclass
class Hold:
    """Reply ``text`` after ``window`` seconds (at once when the server stops): requests a client sends meanwhile
    are in flight beside it (``max_in_flight`` counts them)."""

    text: str
    window: float = 0.5


Behaviour = Reply | Malformed | Status | Hang | Block | Hold


def prompt_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:16]


def last_user_message(body: dict[str, Any]) -> str:
    return next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")


class FakeOpenAI:
    """Start with ``with FakeOpenAI(responder) as server:``; ``server.base_url`` ends with ``/v1``."""

    def __init__(self, responder: Callable[[dict[str, Any]], str], max_requests: int = 100) -> None:
        self.responder = responder
        self.max_requests = max_requests
        self.script: deque[Behaviour] = deque()
        self.requests: list[tuple[float, dict[str, Any], str]] = []  # (arrival, body, behaviour name)
        self.delivered: Counter[str] = Counter()
        self.overflowed = False
        self.blocked = 0
        #: after this many requests every further one is held (Block) until the server stops
        self.block_after: int | None = None
        #: the Authorization header of each request (None: none sent)
        self.authorizations: list[str | None] = []
        #: requests being handled now, and the most at once so far
        self.in_flight = 0
        self.max_in_flight = 0
        #: hung requests answered so far (0 while the server runs: a client that waited for one would hang)
        self.hangs_answered = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def push(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def _next(self, body: dict[str, Any]) -> Behaviour | None:
        with self._lock:
            if len(self.requests) >= self.max_requests:
                self.overflowed = True
                return None
            if self.block_after is not None and len(self.requests) >= self.block_after:
                behaviour: Behaviour = Block(SUBPROCESS_HANG_S)
            else:
                behaviour = self.script.popleft() if self.script else Reply(self.responder(body))
            self.requests.append((time.monotonic(), body, type(behaviour).__name__))
            return behaviour

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, code: int, text: str, headers: dict[str, str] | None = None) -> None:
                data = text.encode()
                self._done()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._send(404, '{"error": "unknown path"}')
                    return
                with fake._lock:
                    fake.authorizations.append(self.headers.get("Authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                self.counted = True
                try:
                    behaviour = fake._next(body)
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                        self._act(behaviour, body)
                finally:
                    self._done()

            def _done(self) -> None:
                """No longer in flight: before the reply is written (the client may send its next request as
                soon as it has the reply)."""
                if getattr(self, "counted", False):
                    self.counted = False
                    with fake._lock:
                        fake.in_flight -= 1

            def _act(self, behaviour: Behaviour | None, body: dict[str, Any]) -> None:
                if behaviour is None:
                    self._send(400, '{"error": "fake server request budget exhausted"}')
                elif isinstance(behaviour, Reply | Hold):
                    if isinstance(behaviour, Hold):
                        fake._release.wait(behaviour.window)
                        behaviour = Reply(behaviour.text)
                    payload = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": behaviour.text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": behaviour.prompt_tokens,
                                  "completion_tokens": behaviour.completion_tokens,
                                  "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens},
                    }
                    with fake._lock:  # counted before sending: the client may act on the reply at once
                        fake.delivered[prompt_key(body)] += 1
                    self._send(200, json.dumps(payload))
                elif isinstance(behaviour, Malformed):
                    self._send(200, behaviour.body)
                elif isinstance(behaviour, Status):
                    self._send(behaviour.code, behaviour.body, behaviour.headers)
                elif isinstance(behaviour, Hang):
                    fake._release.wait(behaviour.limit)
                    with fake._lock:
                        fake.hangs_answered += 1
                    self._send(504, '{"error": "too late"}')
                elif isinstance(behaviour, Block):
                    with fake._lock:
                        fake.blocked += 1
                    fake._release.wait(behaviour.limit)
                    self.close_connection = True

        return Handler

    def __enter__(self) -> FakeOpenAI:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
