"""The ``openai`` contender: a model behind any OpenAI-compatible chat endpoint answers a benchmark through
``medzoo eval MODEL --contender openai`` (issue 28 item 6). Every endpoint here is the scripted local server of
tests/support/fake_openai.py; nothing touches the network."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import fake_openai
from support.faults import cli_error
from support.hang_guard import SUBPROCESS_HANG_S, wait_for

from medzoo.app.cli.main import main
from medzoo.core.evaluation.evaluate_model import get_benchmark

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
MAX_NEW_TOKENS = 12
SECRET = "sk-test-not-a-real-key-1234"


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=2, val=2, test=3)


@pytest.fixture(scope="module")
def items(data_root):
    return get_benchmark("synth-vqa-rad", {"root": str(data_root)}).load()


def pixels_digest(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def question_of(body: dict) -> str:
    content = fake_openai.last_user_message(body)
    return content if isinstance(content, str) else " ".join(p["text"] for p in content if p["type"] == "text")


def asked(body: dict) -> tuple[str, str]:
    """What a request asks: its question and the digest of its image's pixels (questions repeat across images)."""
    content = fake_openai.last_user_message(body)
    url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return question_of(body), pixels_digest(image)


def responder(body: dict) -> str:
    """The served model's answer: a function of the question, so a resumed file can be checked answer by answer."""
    return f"answer to: {question_of(body)}"


def eval_args(base_url: str, out: Path, data_root: Path, *options: str) -> list[str]:
    args = ["eval", MODEL, "--contender", "openai", "--contender-option", f"base_url={base_url}",
            "--contender-option", "backoff=0", "-b", "synth-vqa-rad", "--option", f"root={data_root}", "--option",
            f"max_new_tokens={MAX_NEW_TOKENS}", "-d", str(out)]
    for option in options:
        args += ["--contender-option", option]
    return args


def answers(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


def test_each_question_is_one_chat_request_with_its_image_and_the_decoding_is_recorded(
        data_root, items, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MY_ENDPOINT_KEY", SECRET)
    out = tmp_path / "eval"
    with fake_openai.FakeOpenAI(responder, max_requests=len(items)) as server:
        capsys.readouterr()
        main(eval_args(server.base_url, out, data_root, "api_key_env=MY_ENDPOINT_KEY", "concurrency=4"))
    assert server.request_count == len(items) and not server.overflowed
    assert set(server.authorizations) == {f"Bearer {SECRET}"}
    sent_pairs = []
    for _, body, _ in server.requests:
        assert body["model"] == MODEL
        assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "seed")} == {
            "max_tokens": MAX_NEW_TOKENS, "temperature": 0.0, "top_p": 1.0, "seed": 0}
        [message] = body["messages"]
        image_part, text_part = message["content"]
        assert message["role"] == "user" and text_part["type"] == "text" and "<image>" not in text_part["text"]
        prefix = "data:image/png;base64,"
        assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith(prefix)
        sent = Image.open(io.BytesIO(base64.b64decode(image_part["image_url"]["url"][len(prefix):])))
        sent_pairs.append((text_part["text"], pixels_digest(sent)))
    expected_pairs = []
    for item in items:  # each question was sent with its own image, pixel for pixel
        with Image.open(item.image) as original:
            expected_pairs.append((item.question, pixels_digest(original)))
    assert Counter(sent_pairs) == Counter(expected_pairs)
    rows = answers(out)
    assert sorted(r["question_id"] for r in rows) == sorted(i.question_id for i in items)
    assert all(r["text"] == f"answer to: {r['prompt'].split(chr(10), 1)[-1]}" and r["model_id"] == MODEL
               for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_id"] == MODEL and metrics["protocol"]["prompt_template"] == "chat_template@endpoint"
    assert metrics["contender"] == {
        "name": "openai", "chosen": "--contender", "endpoint": f"{server.base_url}/chat/completions",
        "requested_model": MODEL, "served_model": MODEL,
        "decoding": {"max_tokens": MAX_NEW_TOKENS, "temperature": 0.0, "top_p": 1.0, "seed": 0},
        "concurrency": 4, "max_attempts": 5, "api_key_env": "MY_ENDPOINT_KEY",
        "requests": {"requests_sent": len(items), "retries": 0, "retry_reasons": {}},
    }
    for written in out.iterdir():  # the key is read from the environment and written nowhere
        assert SECRET not in written.read_text(), written


@pytest.mark.parametrize("concurrency", [1, 3])
def test_at_most_concurrency_requests_are_in_flight(concurrency, data_root, items, tmp_path):
    """The first ``concurrency`` requests are held open a while: a client that kept its bound sends nothing more
    meanwhile, one that did not (or one that asked one at a time) is seen."""
    with fake_openai.FakeOpenAI(responder, max_requests=len(items)) as server:
        server.push(*[fake_openai.Hold("held", window=0.4)] * concurrency)
        main(eval_args(server.base_url, tmp_path / "eval", data_root, f"concurrency={concurrency}"))
    assert server.max_in_flight == concurrency
    assert len(answers(tmp_path / "eval")) == len(items)


class RecordingClock:
    """The endpoint's clock: ``sleep`` records how long it was asked to wait and moves the time on at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


def test_429_and_5xx_are_retried_and_retry_after_is_honoured(data_root, items, tmp_path, monkeypatch):
    from medzoo.plugins.contenders import openai_endpoint

    clock = RecordingClock()
    monkeypatch.setattr(openai_endpoint, "time", clock)
    with fake_openai.FakeOpenAI(responder, max_requests=len(items) + 3) as server:
        server.push(fake_openai.Status(429, {"Retry-After": "1"}), fake_openai.Status(500),
                    fake_openai.Status(503))
        main(eval_args(server.base_url, tmp_path / "eval", data_root, "concurrency=1"))
    assert server.request_count == len(items) + 3
    assert [name for _, _, name in server.requests[:4]] == ["Status", "Status", "Status", "Reply"]
    assert [wait for wait in clock.sleeps if wait > 0] == [1.0]  # backoff=0: only the Retry-After waits
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["contender"]["requests"] == {
        "requests_sent": len(items) + 3, "retries": 3,
        "retry_reasons": {"http 429": 1, "http 500": 1, "http 503": 1},
    }
    rows = answers(tmp_path / "eval")
    assert len(rows) == len(items) and all(r["text"].startswith("answer to: ") for r in rows)


def test_a_killed_evaluation_resumes_asking_only_what_is_missing(data_root, items, tmp_path, capsys):
    """The evaluation runs in a subprocess, one request at a time; after ``kept`` replies the endpoint holds the
    next request, the process is killed, and a rerun (against a restarted endpoint on another port) asks only
    the questions with no answer in the file."""
    kept = 7
    out = tmp_path / "eval"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with fake_openai.FakeOpenAI(responder, max_requests=len(items)) as server:
        server.block_after = kept
        command = [sys.executable, "-m", "medzoo.app.cli", *eval_args(server.base_url, out, data_root,
                                                                      "concurrency=1")]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: server.blocked == 1 and (out / "predictions.jsonl").is_file()
                     and len(answers(out)) == kept or process.poll() is not None, "the evaluation's first answers")
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
        finally:
            process.kill()
            process.communicate(timeout=SUBPROCESS_HANG_S)
        first = [asked(body) for _, body, name in server.requests if name == "Reply"]
    assert len(first) == kept and len(answers(out)) == kept
    with fake_openai.FakeOpenAI(responder, max_requests=len(items) - kept) as restarted:
        capsys.readouterr()
        main(eval_args(restarted.base_url, out, data_root, "concurrency=2"))
    assert f"{kept} answers found in {out / 'predictions.jsonl'}, {len(items) - kept} to go" in capsys.readouterr().out
    second = [asked(body) for _, body, _ in restarted.requests]
    assert len(second) == len(items) - kept and not set(first) & set(second) and not restarted.overflowed
    assert len(set(first) | set(second)) == len(items)  # every (question, image) asked exactly once in all
    rows = answers(out)
    assert sorted(r["question_id"] for r in rows) == sorted(i.question_id for i in items)
    assert json.loads((out / "metrics.json").read_text())["n"] == len(items)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_endpoint_is_one_line_after_its_retries(data_root, tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    line = cli_error(capsys, *eval_args(url, tmp_path / "eval", data_root, "max_attempts=2"))
    assert line.startswith(f"error: {url}/chat/completions: cannot reach the endpoint (ConnectError: "), line
    assert line.endswith("(gave up after 2 attempts)"), line


@pytest.mark.parametrize("failure", ["bad-key", "html", "not-a-completion", "not-found"])
def test_a_refused_key_or_a_reply_that_is_not_openai_is_one_line_at_once(failure, data_root, tmp_path, capsys):
    behaviour = {"bad-key": fake_openai.Status(401, body='{"error": {"message": "Incorrect API key"}}'),
                 "html": fake_openai.Malformed("<html><body>Welcome to nginx</body></html>"),
                 "not-a-completion": fake_openai.Malformed('{"object": "list", "data": []}'),
                 "not-found": fake_openai.Status(404, body='{"detail": "Not Found"}')}[failure]
    with fake_openai.FakeOpenAI(responder, max_requests=4) as server:
        server.push(behaviour)
        line = cli_error(capsys, *eval_args(server.base_url, tmp_path / "eval", data_root, "concurrency=1"))
        assert server.request_count == 1  # none of these is retried, and the other questions are not asked
    url = f"{server.base_url}/chat/completions"
    expected = {
        "bad-key": f"error: {url}: HTTP 401: the endpoint refused the API key ({{\"error\": {{\"message\": "
                   "\"Incorrect API key\"}})",
        "html": f"error: {url}: the reply is not JSON ('<html><body>Welcome to nginx</body></html>'); is this an "
                "OpenAI-compatible endpoint (base_url ending in /v1)?",
        "not-a-completion": f"error: {url}: the reply is not an OpenAI chat completion (no "
                            "choices[0].message.content); is this an OpenAI-compatible endpoint (base_url ending "
                            "in /v1)?",
        "not-found": f"error: {url}: HTTP 404: {{\"detail\": \"Not Found\"}}; is this an OpenAI-compatible "
                     "endpoint (base_url ending in /v1)?",
    }[failure]
    assert line == expected


def test_options_are_checked_and_a_literal_key_is_refused(data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "eval"
    cases = {
        "api_key=sk-123": "error: contender openai: option api_key: a key is never given on the command line",
        "concurrency=0": "error: contender openai: option concurrency='0': expected a int >= 1",
        "base_url=localhost:8000": "error: contender openai: option base_url='localhost:8000': expected an http://",
        "extra_body=[1]": "error: contender openai: option extra_body: expected a JSON object",
    }
    for option, expected in cases.items():
        args = eval_args("http://127.0.0.1:9/v1", out, data_root, option)
        assert cli_error(capsys, *args).startswith(expected), option
    no_url = ["eval", MODEL, "--contender", "openai", "-b", "synth-vqa-rad", "--option", f"root={data_root}", "-d",
              str(out)]
    assert cli_error(capsys, *no_url).startswith("error: contender openai: no endpoint; pass --contender-option "
                                                 "base_url=http://HOST:PORT/v1")
    assert not out.exists() or not any(out.iterdir())


def test_medzoo_serve_is_an_endpoint_the_contender_ranks(trained_tiny_model, data_root, items, tmp_path, capsys,
                                                         monkeypatch, single_thread):
    """A real OpenAI-compatible server, not the scripted one: ``medzoo serve`` of a tiny medzoo model answers
    every question through the contender (greedy: what the model gives when medzoo evaluates it directly with
    the template serving renders)."""
    from medzoo.app.serving.app import ServeConfig, create_app
    from medzoo.app.serving.background import BackgroundServer
    from medzoo.app.serving.loading import load_engine

    monkeypatch.setenv("SERVE_KEY", SECRET)
    engine = load_engine(str(trained_tiny_model), device="cpu")
    served, direct = tmp_path / "served", tmp_path / "direct"
    with single_thread(), BackgroundServer(create_app(engine, ServeConfig("tiny-med", api_key=SECRET))) as server:
        main(["eval", "tiny-med", "--contender", "openai", "--contender-option", f"base_url={server.url}/v1",
              "--contender-option", "api_key_env=SERVE_KEY", "--contender-option", "concurrency=2", "-b",
              "synth-vqa-rad", "--option", f"root={data_root}", "--option", f"max_new_tokens={MAX_NEW_TOKENS}",
              "-d", str(served)])
        main(["eval", str(trained_tiny_model), "-b", "synth-vqa-rad", "--option", f"root={data_root}", "--option",
              f"max_new_tokens={MAX_NEW_TOKENS}", "--option", f"prompt_template={engine.processor.template.name}",
              "-d", str(direct)])

    def texts(folder: Path) -> dict[str, str]:
        return {row["question_id"]: row["text"] for row in answers(folder)}

    assert texts(served) == texts(direct) and len(texts(served)) == len(items)
    assert json.loads((served / "metrics.json").read_text())["contender"]["served_model"] == "tiny-med"


def test_several_images_become_several_image_url_parts_in_place():
    """A question with several images (``<image 1>`` ... as a benchmark prompts them, each an ``<image>``
    placeholder here) sends one image_url part per image, where its placeholder stood."""
    from types import SimpleNamespace

    from medzoo.core.interfaces.conversation import Message
    from medzoo.plugins.contenders.openai_messages import openai_messages

    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    request = SimpleNamespace(messages=[Message("user", "Compare <image> with <image>. Which is red?")],
                              images=[red, blue])
    [message] = openai_messages(request)
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image_url", "text", "image_url", "text"]
    urls = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    decoded = [Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) for url in urls]
    assert [image.getpixel((0, 0)) for image in decoded] == [(255, 0, 0), (0, 0, 255)]
    assert [part["text"] for part in message["content"] if part["type"] == "text"] == [
        "Compare", "with", ". Which is red?"]
    text_only = SimpleNamespace(messages=[Message("user", "Is this normal?")], images=[])
    assert openai_messages(text_only) == [{"role": "user", "content": "Is this normal?"}]
