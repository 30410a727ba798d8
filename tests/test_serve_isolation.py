"""One request cannot fail or stall the others: values are checked before a request joins a batch, prompts are
bounded before they are tokenised (and tokenised outside generation's lock), and a row whose generation raises
fails alone."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from medzoo.app.serving.app import ServeConfig, create_app
from medzoo.app.serving.background import BackgroundServer
from medzoo.app.serving.batcher import BatchingSettings
from medzoo.app.serving.limits import ServeLimits
from medzoo.app.serving.loading import load_engine
from medzoo.core.inference import InvalidSettings, RowRequest, SamplingSettings
from medzoo.core.interfaces.conversation import Message
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()
MODEL = "tiny-med"
LIMITS = ServeLimits(max_body_bytes=4 * 1024 * 1024, max_tokens_cap=64, default_max_tokens=16)


@pytest.fixture(scope="module")
def server(trained_tiny_model: Path):
    # a long window gathers concurrent requests into one batch (correctness never depends on it)
    config = ServeConfig(MODEL, limits=LIMITS, batching=BatchingSettings(window_s=1.0, max_batch_size=8))
    app = create_app(load_engine(str(trained_tiny_model), device="cpu"), config)
    with single_thread(), BackgroundServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session


def engine_of(server):
    return server.server.config.app.state.batcher.engine


def body(colour: str, **overrides) -> dict:
    content = [{"type": "image_url", "image_url": {"url": SQUARES.data_url(SQUARES.image(colour))}},
               {"type": "text", "text": SQUARES.question}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 16, **overrides}


def all_at_once(http, bodies: list[dict]) -> list[httpx.Response]:
    responses: list[httpx.Response | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def one(index: int) -> None:
        start.wait(timeout=30)
        responses[index] = http.post("/v1/chat/completions", json=bodies[index])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(r is not None for r in responses)
    return responses


BAD_VALUES = [
    ({"seed": 2**64}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**63}, "seed"),
    ({"temperature": 1e-50}, "temperature"), ({"temperature": 9}, "temperature"), ({"temperature": -0.5}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": -3}, "max_completion_tokens"),
]


@pytest.mark.parametrize("overrides, field", BAD_VALUES, ids=[str(v) for v, _ in BAD_VALUES])
def test_out_of_range_values_are_refused_with_a_line_naming_the_field(http, overrides, field):
    response = http.post("/v1/chat/completions", json=body("red", **overrides))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    value = next(iter(overrides.values()))
    assert error["param"] == field and field in error["message"] and str(value) in error["message"]
    assert "\n" not in error["message"]


def test_edge_values_are_accepted(http):
    for overrides in ({"seed": 0}, {"seed": 2**63 - 1, "temperature": 0.01}, {"temperature": 0}, {"top_p": 1}):
        response = http.post("/v1/chat/completions", json=body("green", **overrides))
        assert response.status_code == 200, (overrides, response.text)


def test_a_bad_request_sent_with_good_ones_fails_alone(http):
    bodies = [body("red"), body("blue", seed=2**64, temperature=1.0), body("green"),
              body("red", temperature=1e-50, seed=3), body("blue")]
    responses = all_at_once(http, bodies)
    good = {0: "red", 2: "green", 4: "blue"}
    for index, colour in good.items():
        assert responses[index].status_code == 200, responses[index].text
        assert responses[index].json()["choices"][0]["message"]["content"] == f"The square is {colour}."
    assert responses[1].status_code == 400 and "seed" in responses[1].json()["error"]["message"]
    assert responses[3].status_code == 400 and "temperature" in responses[3].json()["error"]["message"]


def test_a_huge_prompt_is_refused_before_tokenising(server, http, monkeypatch):
    engine = engine_of(server)
    encoded = []
    encode = engine.encode
    monkeypatch.setattr(engine, "encode", lambda *args: encoded.append(1) or encode(*args))
    huge = "why " * (engine.context_length * 8 // 4 + 1000)
    response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [
        {"role": "user", "content": huge}]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages" and "characters" in error["message"]
    assert encoded == []
    assert http.get("/health").status_code == 200
    answer = http.post("/v1/chat/completions", json=body("blue"))
    assert answer.status_code == 200 and encoded == [1]


def test_encoding_does_not_wait_for_the_generation_lock(server):
    """A running batch holds the tokenizer lock at every step; encoding a request uses its own."""
    engine = engine_of(server)
    done = threading.Event()
    with engine.tokenizer_lock:
        worker = threading.Thread(target=lambda: (engine.encode([Message("user", "hello")], []), done.set()))
        worker.start()
        assert done.wait(timeout=60)
    worker.join(timeout=60)


def test_a_row_whose_generation_raises_fails_alone(server, http, monkeypatch):
    engine = engine_of(server)
    generate = engine._generate

    def failing(rows, shared_sampling):
        if any(row.request.settings.seed == 666 for row in rows):
            raise RuntimeError("injected failure\nsecond line of a traceback")
        return generate(rows, shared_sampling)

    monkeypatch.setattr(engine, "_generate", failing)
    bodies = [body("red"), body("green", seed=666), body("blue")]
    responses = all_at_once(http, bodies)
    assert responses[0].json()["choices"][0]["message"]["content"] == "The square is red."
    assert responses[2].json()["choices"][0]["message"]["content"] == "The square is blue."
    assert responses[1].status_code == 500
    message = responses[1].json()["error"]["message"]
    assert message == "generation failed: RuntimeError: injected failure"


def test_the_batcher_isolates_a_row_with_invalid_settings(server):
    """Rows that reach the engine without the server's checks: the bad one gets a 400, the rest their answers."""
    batcher = server.server.config.app.state.batcher
    engine = batcher.engine
    class Job:
        def __init__(self, settings):
            self.row = RowRequest(engine.encode([Message("user", SQUARES.question)], []), settings)
            self.result = None

        def on_done(self, completion):
            self.result = ("done", completion.text)

        def on_error(self, message, status=500):
            self.result = ("error", message, status)

    jobs = [Job(SamplingSettings(max_new_tokens=4)), Job(SamplingSettings(max_new_tokens=4, temperature=1e-50)),
            Job(SamplingSettings(max_new_tokens=4, temperature=1.0, seed=2**70))]
    batcher._answer(jobs)
    assert jobs[0].result[0] == "done"
    assert jobs[1].result[0] == "error" and jobs[1].result[2] == 400 and "temperature" in jobs[1].result[1]
    assert jobs[2].result[0] == "error" and jobs[2].result[2] == 400 and "seed" in jobs[2].result[1]


def test_settings_validate_names_the_setting():
    for settings, field in [(SamplingSettings(temperature=float("nan")), "temperature"),
                            (SamplingSettings(temperature=float("inf")), "temperature"),
                            (SamplingSettings(top_p=0.0), "top_p"), (SamplingSettings(seed=-5), "seed"),
                            (SamplingSettings(max_new_tokens=0), "max_tokens")]:
        with pytest.raises(InvalidSettings) as raised:
            settings.validate()
        assert raised.value.field == field and field in str(raised.value)
    assert SamplingSettings(temperature=0.01, seed=0).validate()
