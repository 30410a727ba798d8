"""Row-wise batched generation: a batch answers each row as if it were alone, rows keep their own budgets,
stop strings, sampling and cancellation; stop strings never leak into streamed text."""

from __future__ import annotations

import pytest
import torch

from medzoo.app.serving.loading import load_engine
from medzoo.core.inference import ChatRequest, RowRequest, SamplingSettings
from medzoo.core.inference.sampling import top_p_filter
from medzoo.core.inference.text_stream import IncrementalDecoder, StopScanner
from medzoo.core.interfaces.conversation import Message
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()


@pytest.fixture(scope="module")
def engine(trained_tiny_model):
    with single_thread():
        yield load_engine(str(trained_tiny_model), device="cpu")


def question(colour: str | None, text: str = SQUARES.question) -> tuple[list[Message], list]:
    if colour is None:
        return [Message("user", text)], []
    return [Message("user", f"<image>\n{text}")], [SQUARES.image(colour)]


def test_batch_rows_match_answers_alone_and_length_sorted_batches(engine):
    prompts = [question("red"), question(None, "hello there, how long is this prompt now?"), question("blue"),
               question("green", "Colour?")]
    params = SamplingSettings(max_new_tokens=12)
    rows = [RowRequest(engine.encode(m, i), params) for m, i in prompts]
    batched = [c.text for c in engine.run(rows)]
    alone = [engine.run([RowRequest(engine.encode(m, i), params)])[0].text for m, i in prompts]
    reference = [c.text for c in engine.answer(
        [ChatRequest(m, i[0] if i else None) for m, i in prompts], SamplingSettings(max_new_tokens=12)
    )]
    assert batched == alone == reference
    assert batched[0] == "The square is red." and batched[2] == "The square is blue."


def test_rows_keep_their_own_budget_stops_and_streams(engine):
    streamed: dict[int, list[str]] = {0: [], 1: [], 2: []}
    rows = [
        RowRequest(engine.encode(*question("red")), SamplingSettings(max_new_tokens=3), on_text=streamed[0].append),
        RowRequest(engine.encode(*question("green")), SamplingSettings(max_new_tokens=16, stop=("gre",)),
                   on_text=streamed[1].append),
        RowRequest(engine.encode(*question("blue")), SamplingSettings(max_new_tokens=16), on_text=streamed[2].append),
    ]
    short, stopped, full = engine.run(rows)
    assert (short.finish_reason, short.completion_tokens) == ("length", 3)
    assert (stopped.text, stopped.finish_reason) == ("The square is", "stop")
    assert (full.text, full.finish_reason) == ("The square is blue.", "stop")
    for index, completion in enumerate((short, stopped, full)):
        assert "".join(streamed[index]) == completion.text


def test_cancelled_row_stops_while_others_continue(engine):
    cancel_me = RowRequest(engine.encode(*question("red")), SamplingSettings(max_new_tokens=16))
    cancel_me.on_text = lambda _: cancel_me.cancelled.set()
    other = RowRequest(engine.encode(*question("blue")), SamplingSettings(max_new_tokens=16))
    cancelled, answered = engine.run([cancel_me, other])
    assert cancelled.finish_reason == "cancelled" and cancelled.completion_tokens <= 2
    assert answered.text == "The square is blue."


def test_seeded_sampling_does_not_depend_on_the_batch(engine):
    sampled = SamplingSettings(max_new_tokens=10, temperature=5.0, seed=4)
    alone = engine.run([RowRequest(engine.encode(*question("red")), sampled)])[0].text
    again = engine.run([RowRequest(engine.encode(*question("red")), sampled)])[0].text
    with_greedy = engine.run([RowRequest(engine.encode(*question("red")), sampled),
                              RowRequest(engine.encode(*question("red")), SamplingSettings(max_new_tokens=10))])
    assert alone == again
    assert with_greedy[1].text == "The square is red."
    other_seed = SamplingSettings(max_new_tokens=10, temperature=5.0, seed=5)
    assert engine.run([RowRequest(engine.encode(*question("red")), other_seed)])[0].text != alone


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.5, 0.3, 0.15, 0.05]])
    kept = top_p_filter(probs, torch.tensor([0.7, 0.01]))
    torch.testing.assert_close(kept[0], torch.tensor([0.625, 0.375, 0.0, 0.0]))
    torch.testing.assert_close(kept[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_stop_scanner_holds_back_partial_stops_and_whitespace():
    scanner = StopScanner(["###", "END"])
    released = [scanner.feed(piece) for piece in ["  Hello", " wor", "ld #", "#", "x  ", "more E", "N", "D tail"]]
    assert released == ["Hello", " wor", "ld", "", " ##x", "  more", "", ""]
    assert scanner.stopped and scanner.text == "Hello world ##x  more"


def test_incremental_decoder_matches_a_full_decode(engine):
    tokenizer = engine.model.tokenizer
    text = "The square is red. Ünïcode ✓ and 数字 too."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token) for token in ids] + [decoder.flush()]
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert all("\ufffd" not in piece for piece in pieces)


def test_answer_samples_repeatably_with_the_protocol_seed(engine):
    requests = [ChatRequest(m, i[0]) for m, i in (question(colour) for colour in ("red", "blue", "green"))]
    sampled = SamplingSettings(max_new_tokens=8, temperature=5.0, seed=0)
    first = [c.text for c in engine.answer(requests, sampled, batch_size=2)]
    assert first == [c.text for c in engine.answer(requests, sampled, batch_size=2)]
    assert first != [c.text for c in engine.answer(requests, SamplingSettings(8, 5.0, seed=1), batch_size=2)]


def test_stop_strings_are_matched_before_whitespace_is_dropped():
    scanner = StopScanner(["\n"])
    assert scanner.feed("\n") == "" and scanner.stopped and scanner.text == ""
    scanner = StopScanner(["\n"])
    assert [scanner.feed(piece) for piece in (" Yes", ".\n", "more")] == ["Yes", "."] + [""]
