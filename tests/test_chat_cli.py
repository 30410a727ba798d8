"""``medzoo chat`` fed through stdin: streamed multi-turn answers with the model's template, /image, /reset."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from medzoo.app.cli.main import cli
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()


@pytest.fixture(scope="session")
def model_dir(trained_tiny_model) -> Path:
    return trained_tiny_model


@pytest.fixture(autouse=True)
def one_thread():
    with single_thread():
        yield


def answers(output: str) -> list[str]:
    return [line.split("ASSISTANT> ", 1)[1].strip() for line in output.splitlines() if "ASSISTANT> " in line]


def test_chat_streams_answers_switches_images_and_resets(model_dir, tmp_path, monkeypatch):
    SQUARES.image("red").save(tmp_path / "red.png")
    SQUARES.image("blue").save(tmp_path / "blue.png")
    from medzoo.core.inference import InferenceEngine

    prompts: list[int] = []
    pieces: list[str] = []
    run = InferenceEngine.run

    def recording_run(self, requests):
        prompts.append(len(requests[0].sample))
        original = requests[0].on_text
        requests[0].on_text = lambda text: (pieces.append(text), original(text))
        return run(self, requests)

    monkeypatch.setattr(InferenceEngine, "run", recording_run)
    stdin = "\n".join([
        SQUARES.question, "Tell me again.", f"/image {tmp_path / 'blue.png'}", SQUARES.question,
        "/reset", "hello", "/image /no/such.png", "/bogus", "/quit", "never read",
    ]) + "\n"
    result = CliRunner().invoke(
        cli, ["chat", str(model_dir), "--image", str(tmp_path / "red.png"), "--max-new-tokens", "16"], input=stdin
    )
    assert result.exit_code == 0, result.output
    replies = answers(result.output)
    assert len(replies) == 4
    assert replies[0] == "The square is red." and replies[2] == "The square is blue."
    # the second question carries the first exchange; after /image and /reset the history is gone
    assert prompts[1] > prompts[0] + 5 and prompts[2] == prompts[0] and prompts[3] < prompts[0]
    assert len(pieces) > 4, "answers were not streamed piece by piece"
    assert "mistral_instruct" in result.output and "(conversation cleared)" in result.output
    assert "cannot open image" in result.output and "unknown command '/bogus'" in result.output
    assert "never read" not in result.output


def test_chat_sampling_options_are_checked(model_dir):
    result = CliRunner().invoke(cli, ["chat", str(model_dir), "--top-p", "0"], input="")
    assert result.exit_code != 0 and "top-p" in result.output


def test_chat_ends_at_end_of_input_with_sampling(model_dir):
    result = CliRunner().invoke(
        cli, ["chat", str(model_dir), "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--max-new-tokens", "4"],
        input="hello\n",
    )
    assert result.exit_code == 0, result.output
    assert len(answers(result.output)) == 1
