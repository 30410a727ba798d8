"""The OpenAI-compatible server, driven by the official ``openai`` client and raw HTTP on loopback: answers with
images (data URLs and allowed files), streaming, models/health, limits and malformed input (4xx, server stays
up), API keys, dynamic batching."""

from __future__ import annotations

import base64
import io
import random
import threading
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from support.hang_guard import wait_for

from medzoo.app.serving.app import ServeConfig, create_app
from medzoo.app.serving.background import BackgroundServer
from medzoo.app.serving.batcher import BatchingSettings
from medzoo.app.serving.limits import ServeLimits
from medzoo.app.serving.loading import load_engine
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()

#: PIL warns about the decompression bomb (in the server thread) before the server refuses it
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
KEY = "test-key-123"
MODEL = "tiny-med"
LIMITS = ServeLimits(max_body_bytes=512 * 1024, max_image_bytes=64 * 1024, max_image_pixels=256 * 256,
                     max_images_per_request=2, max_tokens_cap=64, default_max_tokens=32)


@pytest.fixture(scope="session")
def model_dir(trained_tiny_model) -> Path:
    return trained_tiny_model


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve-files")
    allowed = root / "allowed"
    (allowed / "sub").mkdir(parents=True)
    SQUARES.image("blue").save(allowed / "sub" / "blue.png")
    SQUARES.image("red").save(root / "outside.png")
    (allowed / "link.png").symlink_to(root / "outside.png")
    return allowed


@pytest.fixture(scope="module")
def server(model_dir, image_folder):
    config = ServeConfig(MODEL, api_key=KEY, image_folder=image_folder, limits=LIMITS)
    app = create_app(load_engine(str(model_dir), device="cpu"), config)
    with single_thread(), BackgroundServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as session:
        yield session


def ask(image_url: str, text: str = SQUARES.question) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                         {"type": "text", "text": text}]}]


def body(**overrides) -> dict:
    return {"model": MODEL, "messages": ask(SQUARES.data_url(SQUARES.image("red"))), **overrides}


def test_models_and_health(client, http, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(server.url + "/health").status_code == 401


@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_completion_with_data_url_image(client, colour):
    response = client.chat.completions.create(
        model=MODEL, messages=ask(SQUARES.data_url(SQUARES.image(colour))), max_tokens=16
    )
    choice = response.choices[0]
    assert choice.message.content == f"The square is {colour}."
    assert choice.finish_reason == "stop"
    assert response.usage.prompt_tokens > 16 and 0 < response.usage.completion_tokens <= 16


def test_streamed_completion_matches_plain_one(client, http):
    messages = ask(SQUARES.data_url(SQUARES.image("green")))
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, stream=True)
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1, "the answer arrived in one piece"
    assert "".join(pieces) == "The square is green."
    assert chunks[-1].choices[0].finish_reason == "stop"
    with http.stream("POST", "/v1/chat/completions", json=body(stream=True, max_tokens=8)) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_stop_strings_budget_and_multi_turn(client):
    stopped = client.chat.completions.create(model=MODEL, messages=body()["messages"], stop=[" is"])
    assert stopped.choices[0].message.content == "The square"
    assert stopped.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(model=MODEL, messages=body()["messages"], max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    follow_up = body()["messages"] + [{"role": "assistant", "content": "The square is red."},
                                      {"role": "user", "content": "And again?"}]
    again = client.chat.completions.create(model=MODEL, messages=follow_up, max_tokens=8)
    assert again.choices[0].message.content


def test_seeded_sampling_is_reproducible(client):
    first, second = (
        client.chat.completions.create(model=MODEL, messages=body()["messages"], temperature=1.5, top_p=0.9,
                                       seed=11, max_tokens=12).choices[0].message.content
        for _ in range(2)
    )
    assert first == second


def png(size: tuple[int, int], colour=(200, 20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url_of(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(0).randbytes(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """10000 x 10000 pixels in a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def malformed(case: str) -> tuple[dict, int, str]:
    """httpx keyword arguments, expected status, a fragment of the error message."""
    red = SQUARES.data_url(SQUARES.image("red"))
    cases = {
        "bad json": lambda: ({"content": b'{"model": "tiny-med", "messages": [',
                              "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        "no messages": lambda: ({"json": body(messages=[])}, 400, "messages"),
        "bad role": lambda: ({"json": body(messages=[{"role": "tool", "content": "hi"}])}, 400, "role"),
        "bad turn order": lambda: ({"json": body(messages=[{"role": "assistant", "content": "hi"}])}, 400,
                                   "expected 'user'"),
        "unknown part": lambda: ({"json": body(messages=[{"role": "user", "content": [{"type": "audio"}]}])}, 400,
                                 "messages.0.content"),
        "content not text": lambda: ({"json": body(messages=[{"role": "user", "content": 42}])}, 400, "content"),
        "bad base64": lambda: ({"json": body(messages=ask("data:image/png;base64,@@not-base64@@"))}, 400, "base64"),
        "not an image": lambda: ({"json": body(messages=ask(data_url_of(b"hello world" * 10)))}, 400, "decoded"),
        "not a data url": lambda: ({"json": body(messages=ask("data:image/png,raw"))}, 400, "data URL"),
        "remote url": lambda: ({"json": body(messages=ask("https://example.com/x.png"))}, 400, "remote"),
        "too many images": lambda: ({"json": body(messages=[{"role": "user", "content": [
            image_part(red), image_part(red), image_part(red), {"type": "text", "text": "hi"}]}])}, 400,
            "more than 2 image"),
        "image in assistant turn": lambda: ({"json": body(messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": [image_part(red)]},
            {"role": "user", "content": "hi"}])}, 400, "only accepted in user"),
        "literal placeholder": lambda: ({"json": body(messages=[{"role": "user", "content": "<image>\nhi"}])}, 400,
                                        "<image>"),
        "image bytes over limit": lambda: ({"json": body(messages=ask(data_url_of(noise_png(160))))}, 413, "bytes"),
        "decompression bomb": lambda: ({"json": body(messages=ask(data_url_of(bomb_png())))}, 400, "pixels"),
        "max_tokens over cap": lambda: ({"json": body(max_tokens=65)}, 400, "limit is 64"),
        "temperature out of range": lambda: ({"json": body(temperature=9)}, 400, "temperature"),
        "n > 1": lambda: ({"json": body(n=2)}, 400, "n: Input should be less than or equal to 1"),
        "unknown model": lambda: ({"json": body(model="gpt-4")}, 404, "not served"),
        "body too large": lambda: ({"json": body(padding="x" * 600_000)}, 413, "larger than"),
    }
    return cases[case]()


MALFORMED = ["bad json", "no messages", "bad role", "bad turn order", "unknown part", "content not text",
             "bad base64", "not an image", "not a data url", "remote url", "too many images",
             "image in assistant turn", "literal placeholder", "image bytes over limit", "decompression bomb",
             "max_tokens over cap", "temperature out of range", "n > 1", "unknown model", "body too large"]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_requests_get_4xx_and_the_server_keeps_answering(http, client, case):
    kwargs, status, fragment = malformed(case)
    response = http.post("/v1/chat/completions", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"]
    assert client.chat.completions.create(model=MODEL, messages=body()["messages"], max_tokens=4).choices


def test_api_key_is_required(server):
    anonymous = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.chat.completions.create(model=MODEL, messages=body()["messages"])
    response = httpx.post(server.url + "/v1/chat/completions", json=body())
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/").status_code == 200  # the static page asks for the key itself


def test_chunked_body_over_limit_is_refused(http):
    def chunks():
        for _ in range(40):
            yield b" " * 16384

    response = http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert http.get("/health").status_code == 200


@pytest.mark.parametrize(
    "path, status",
    [("sub/blue.png", 200), ("file://sub/blue.png", 200), ("../outside.png", 403), ("link.png", 403),
     ("sub/missing.png", 400)],
)
def test_file_images_only_inside_the_allowed_folder(http, path, status):
    response = http.post("/v1/chat/completions", json=body(messages=ask(path)))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["choices"][0]["message"]["content"] == "The square is blue."


def test_absolute_paths_outside_the_folder_are_refused(http, image_folder):
    inside = http.post("/v1/chat/completions", json=body(messages=ask(f"file://{image_folder}/sub/blue.png")))
    assert inside.status_code == 200
    outside = http.post("/v1/chat/completions", json=body(messages=ask(str(image_folder.parent / "outside.png"))))
    assert outside.status_code == 403 and "outside" in outside.json()["error"]["message"]


def test_concurrent_requests_share_one_batch(model_dir):
    """8 requests sent at once are answered together, each exactly as when asked alone."""
    settings = BatchingSettings(window_s=2.0, max_batch_size=8)
    app = create_app(load_engine(str(model_dir), device="cpu"), ServeConfig(MODEL, batching=settings))
    colours = ["red", "green", "blue", "red", "green", "blue", "green", "red"]
    answers: dict[int, str] = {}
    start = threading.Barrier(len(colours))
    with single_thread(), BackgroundServer(app) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=60)

        def one(index: int) -> None:
            start.wait(timeout=30)
            response = client.chat.completions.create(
                model=MODEL, messages=ask(SQUARES.data_url(SQUARES.image(colours[index]))), max_tokens=16
            )
            answers[index] = response.choices[0].message.content

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(colours))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        sizes = list(app.state.batcher.batch_sizes)
    assert answers == {i: f"The square is {c}." for i, c in enumerate(colours)}
    assert sizes == [8], sizes


def test_a_disconnected_stream_stops_its_row(server, http, monkeypatch):
    engine = server.server.config.app.state.batcher.engine
    completions = []
    run = engine.run

    def held_after_first_text(rows):
        """Each row's text callback, once it has sent text, waits (up to 60 s) for the server to mark the row
        cancelled: the row cannot reach its budget before the disconnect is seen, however busy the machine."""
        for row in rows:
            if row.on_text is not None:
                send, cancelled = row.on_text, row.cancelled

                def on_text(text, send=send, cancelled=cancelled):
                    send(text)
                    if text:
                        cancelled.wait(60)
                row.on_text = on_text
        completions.extend(done := run(rows))
        return done

    monkeypatch.setattr(engine, "run", held_after_first_text)
    request = body(stream=True, max_tokens=64, temperature=2.0, seed=1)
    with http.stream("POST", "/v1/chat/completions", json=request) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break
    wait_for(lambda: completions, "the engine finishing the cancelled stream", poll_s=0.02)
    assert completions and completions[0].finish_reason == "cancelled", completions
    assert completions[0].completion_tokens < 64
