"""Fault injection (issue 15), serving: an overloaded, stopping or misused server refuses with the right status and
a one-line OpenAI-style error, and keeps answering everyone else. (Value ranges, bombs, path escapes and batch
isolation are in test_serve_api.py and test_serve_isolation.py.)"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import httpx
import pytest

from medzoo.app.serving.app import ServeConfig, create_app
from medzoo.app.serving.background import BackgroundServer
from medzoo.app.serving.batcher import BatchingSettings
from medzoo.app.serving.limits import ServeLimits
from medzoo.app.serving.loading import load_engine
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()
MODEL = "tiny-med"
LIMITS = ServeLimits(max_body_bytes=2 * 1024 * 1024, max_tokens_cap=32, default_max_tokens=8, max_messages=6,
                     max_stop_strings=2)


def body(colour: str = "red", **overrides) -> dict:
    content = [{"type": "image_url", "image_url": {"url": SQUARES.data_url(SQUARES.image(colour))}},
               {"type": "text", "text": SQUARES.question}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **overrides}


def one_line_error(response: httpx.Response) -> str:
    message = response.json()["error"]["message"]
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture(scope="module")
def engine(trained_tiny_model: Path):
    return load_engine(str(trained_tiny_model), device="cpu")


@pytest.fixture(scope="module")
def server(engine):
    config = ServeConfig(MODEL, limits=LIMITS, batching=BatchingSettings(window_s=0.01, max_batch_size=8))
    with single_thread(), BackgroundServer(create_app(engine, config)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=300) as session:
        yield session


def still_answers(http) -> None:
    response = http.post("/v1/chat/completions", json=body("blue"))
    assert response.status_code == 200, response.text
    assert http.get("/health").json()["status"] == "ok"


class Gate:
    """Holds the engine's generation until opened: a deterministic 'busy' server."""

    def __init__(self, engine, monkeypatch) -> None:
        self.entered, self.opened = threading.Event(), threading.Event()
        real = engine.run

        def held(rows):
            self.entered.set()
            assert self.opened.wait(timeout=600), "the gate was never opened"
            return real(rows)

        monkeypatch.setattr(engine, "run", held)


def post_in_background(url: str, payload: dict, results: list, index: int) -> threading.Thread:
    def post() -> None:
        with httpx.Client(base_url=url, timeout=600) as client:
            results[index] = client.post("/v1/chat/completions", json=payload)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_a_full_queue_is_refused_with_503_and_the_waiting_requests_are_answered(engine, monkeypatch):
    config = ServeConfig(MODEL, limits=LIMITS, batching=BatchingSettings(window_s=0.0, max_wait_s=0.0,
                                                                         max_batch_size=1, max_pending=1))
    gate = Gate(engine, monkeypatch)
    with single_thread(), BackgroundServer(create_app(engine, config)) as running:
        results: list[httpx.Response | None] = [None, None]
        first = post_in_background(running.url, body("red"), results, 0)
        assert gate.entered.wait(timeout=600)  # the worker holds request 1
        second = post_in_background(running.url, body("green"), results, 1)
        with httpx.Client(base_url=running.url, timeout=600) as client:
            while client.get("/health").json()["pending"] < 1:  # request 2 waits in the queue
                threading.Event().wait(0.01)
            refused = client.post("/v1/chat/completions", json=body("blue"))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "server_busy"
            assert "1 requests are already waiting; retry later" in one_line_error(refused)
            gate.opened.set()
            first.join(600)
            second.join(600)
            assert [r.status_code for r in results] == [200, 200]
            assert client.post("/v1/chat/completions", json=body("blue")).status_code == 200


def test_requests_waiting_when_the_server_stops_get_503_not_a_hang(engine, monkeypatch):
    config = ServeConfig(MODEL, limits=LIMITS, batching=BatchingSettings(window_s=0.0, max_wait_s=0.0,
                                                                         max_batch_size=1, max_pending=4))
    gate = Gate(engine, monkeypatch)
    app = create_app(engine, config)
    with single_thread(), BackgroundServer(app) as running:
        results: list[httpx.Response | None] = [None, None]
        first = post_in_background(running.url, body("red"), results, 0)
        assert gate.entered.wait(timeout=600)
        second = post_in_background(running.url, body("green"), results, 1)
        with httpx.Client(base_url=running.url, timeout=600) as client:
            while client.get("/health").json()["pending"] < 1:
                threading.Event().wait(0.01)
        batcher = app.state.batcher
        stopper = threading.Thread(target=batcher.stop)
        stopper.start()
        gate.opened.set()  # the running batch finishes; the waiting one is failed
        stopper.join(600)
        first.join(600)
        second.join(600)
    assert results[0].status_code == 200
    assert results[1].status_code == 503 and "shutting down" in one_line_error(results[1])


TOO_MUCH = {
    "too many messages": ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}] * 3
                          + [{"role": "user", "content": "hi"}]}, "messages"),
    "too many stop strings": ({"stop": ["a", "b", "c"]}, "stop"),
    "stop not text": ({"stop": [1, 2]}, "stop"),
    "max_tokens not an integer": ({"max_tokens": 2.5}, "max_tokens"),
    "temperature not a number": ({"temperature": "hot"}, "temperature"),
    "messages not a list": ({"messages": {"role": "user", "content": "hi"}}, "messages"),
}


@pytest.mark.parametrize(("change", "field"), TOO_MUCH.values(), ids=TOO_MUCH.keys())
def test_requests_beyond_the_limits_get_400_naming_the_field(http, change, field):
    response = http.post("/v1/chat/completions", json=body(**change))
    assert response.status_code == 400, response.text
    assert field in one_line_error(response)
    still_answers(http)


@pytest.mark.parametrize(("content", "headers"), [
    (b"[1, 2, 3]", {"content-type": "application/json"}),
    (b'"just a string"', {"content-type": "application/json"}),
    (b"\xff\xfe not utf-8 {", {"content-type": "application/json"}),
    (json.dumps(body()).encode(), {"content-type": "text/plain"}),
], ids=["a list", "a string", "not utf-8", "text/plain"])
def test_bodies_that_are_not_a_request_object_get_4xx(http, content, headers):
    response = http.post("/v1/chat/completions", content=content, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    one_line_error(response)
    still_answers(http)


def test_a_lone_surrogate_in_a_prompt_is_a_400_naming_it(http):
    raw = json.dumps(body()).replace(SQUARES.question, SQUARES.question + "\\ud800")
    response = http.post("/v1/chat/completions", content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "messages.0.content: not valid Unicode (a lone surrogate" in one_line_error(response)
    still_answers(http)


def test_a_truncated_png_is_refused_naming_the_image(http):
    buffer = io.BytesIO()
    SQUARES.image("red").save(buffer, format="PNG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    import base64

    url = "data:image/png;base64," + base64.b64encode(truncated).decode()
    payload = body()
    payload["messages"][0]["content"][0]["image_url"]["url"] = url
    response = http.post("/v1/chat/completions", json=payload)
    assert response.status_code == 400, response.text
    assert "image" in one_line_error(response)
    still_answers(http)


def test_a_client_that_sends_half_a_body_and_leaves_does_not_stall_others(server, http):
    import socket

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{\"model\": \"tiny-med\", ")
    still_answers(http)


def test_a_stream_whose_generation_fails_ends_with_an_error_event(server, http, monkeypatch):
    engine = server.server.config.app.state.batcher.engine

    def broken(rows):
        raise RuntimeError("simulated kernel failure\nwith a second line")

    monkeypatch.setattr(engine, "run", broken)
    with http.stream("POST", "/v1/chat/completions", json=body(stream=True)) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["message"] == "generation failed: RuntimeError: simulated kernel failure"
    monkeypatch.undo()
    still_answers(http)
