"""Several images per question: each ``<image>`` placeholder expanded in place with its own image's tokens, in the
processor and the engine, in served requests, in the contenders' chat messages and in training records; a model
that takes one image follows its declared policy (refuse or first), recorded and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medzoo.app.serving.images import ImageLoader
from medzoo.app.serving.limits import RequestError, ServeLimits
from medzoo.app.serving.openai_schema import ChatMessage
from medzoo.app.serving.prepare import conversation
from medzoo.core.errors import DataError
from medzoo.core.evaluation.multi_image import apply_multi_image, multi_image_policy
from medzoo.core.inference import ChatRequest
from medzoo.core.interfaces.benchmark import BenchmarkItem
from medzoo.core.interfaces.conversation import Message
from medzoo.plugins.contenders.hf_messages import request_messages
from medzoo.plugins.contenders.openai_messages import openai_messages
from medzoo.testing import ColourSquares, single_thread

SQUARES = ColourSquares()


@pytest.fixture(scope="module")
def engine(trained_tiny_model):
    from medzoo.app.serving.loading import load_engine

    with single_thread():
        yield load_engine(str(trained_tiny_model), device="cpu")


def _spans(ids: list[int], fill: int) -> list[tuple[int, int]]:
    """(start, end) of each run of image fill tokens."""
    spans, start = [], None
    for index, token in enumerate([*ids, -1]):
        if token == fill and start is None:
            start = index
        elif token != fill and start is not None:
            spans.append((start, index))
            start = None
    return spans


def test_each_placeholder_is_expanded_in_place_with_its_own_images_features(engine):
    model = engine.model
    red, blue = SQUARES.image("red"), SQUARES.image("blue")
    messages = [Message("user", "First <image> then <image> which colour?")]
    sample = engine.encode(messages, [red, blue])
    spans = _spans(sample.input_ids, model.markup.fill_id)
    assert len(spans) == 2 and all(end - start == model.num_image_tokens for start, end in spans)
    between = model.tokenizer.decode(sample.input_ids[spans[0][1]:spans[1][0]])
    assert "then" in between and sample.pixel_values.shape[0] == 2
    with torch.inference_mode():
        ids = torch.tensor([sample.input_ids])
        embeds = model.embed_inputs(ids, sample.pixel_values)
        features = model.image_features(sample.pixel_values)
    for index, (start, end) in enumerate(spans):  # image i's features sit where placeholder i stood
        torch.testing.assert_close(embeds[0, start:end], features[index * (end - start):(index + 1) * (end - start)])
    swapped = engine.encode(messages, [blue, red])
    assert not torch.equal(swapped.pixel_values, sample.pixel_values)


def test_the_engine_answers_a_request_with_several_images(engine):
    from medzoo.core.inference import SamplingSettings

    request = ChatRequest([Message("user", f"<image>\n<image>\n{SQUARES.question}")], SQUARES.image("red"),
                          [SQUARES.image("green")])
    assert len(request.images) == 2
    (answer,) = engine.answer([request], SamplingSettings(max_new_tokens=6))
    assert answer.text and answer.prompt_tokens > 2 * engine.model.num_image_tokens
    with pytest.raises(ValueError, match="2 <image> placeholder"):
        engine.encode(request.messages, [SQUARES.image("red")])


def test_a_served_message_keeps_its_images_where_they_stood():
    limits = ServeLimits(max_images_per_request=3)
    url = SQUARES.data_url(SQUARES.image("red"))
    message = ChatMessage.model_validate({"role": "user", "content": [
        {"type": "text", "text": "Compare"}, {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": "with"}, {"type": "image_url", "image_url": {"url": url}},
    ]})  # fmt: skip
    messages, images = conversation([message], ImageLoader(limits), limits)
    assert messages[0].content == "Compare\n<image>\nwith\n<image>" and len(images) == 2
    with pytest.raises(RequestError, match="more than 1 image"):
        conversation([message], ImageLoader(ServeLimits()), ServeLimits())


def test_contenders_send_each_image_where_its_placeholder_stood():
    request = ChatRequest([Message("user", "A <image> and B <image> differ?")], SQUARES.image("red"),
                          [SQUARES.image("blue")])
    parts = request_messages(request)[0]["content"]
    assert [part["type"] for part in parts] == ["text", "image", "text", "image", "text"]
    assert parts[1]["image"].getpixel((0, 0)) == SQUARES.colours["red"]
    assert parts[3]["image"].getpixel((0, 0)) == SQUARES.colours["blue"]
    sent = openai_messages(request)[0]["content"]
    assert [part["type"] for part in sent] == ["text", "image_url", "text", "image_url", "text"]
    assert sent[1]["image_url"]["url"] != sent[3]["image_url"]["url"]


def _items() -> list[BenchmarkItem]:
    return [
        BenchmarkItem("one", "q", "A", Path("a.png")),
        BenchmarkItem("two", "q", "A", Path("a.png"), extra_images=[Path("b.png")]),
        BenchmarkItem("none", "q", "A"),
    ]


def test_the_multi_image_policies_refuse_or_keep_the_first_image_and_count_it():
    kept, outcome = apply_multi_image(_items(), "refuse")
    assert [item.question_id for item in kept] == ["one", "none"]
    assert outcome.as_metrics() == {"policy": "refuse", "questions_with_several_images": 1, "refused": 1,
                                    "first_image_only": 0}
    kept, outcome = apply_multi_image(_items(), "first")
    assert [item.images for item in kept] == [[Path("a.png")], [Path("a.png")], []]
    assert outcome.first_only == 1 and "first image only" in outcome.describe("b")
    kept, outcome = apply_multi_image(_items(), "all")
    assert kept[1].images == [Path("a.png"), Path("b.png")] and outcome.several == 1


def test_a_one_image_answerer_cannot_be_asked_for_all_images_and_bad_names_are_one_line():
    assert multi_image_policy("first", None, "m") == "first"
    assert multi_image_policy("all", "refuse", "m") == "refuse"
    with pytest.raises(DataError, match="m takes one image per question"):
        multi_image_policy("refuse", "all", "m")
    with pytest.raises(DataError, match="multi_image='some': expected one of all, first, refuse"):
        multi_image_policy("all", "some", "m")


def test_training_records_with_several_images_are_read_encoded_and_trained_on(trained_tiny_model, tmp_path):
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.recipes.schema import StageConfig
    from medzoo.core.training.stage_data import assemble_batch, load_stage_data

    for colour in ("red", "blue"):
        SQUARES.image(colour).save(tmp_path / f"{colour}.png")
    records = [
        {"id": "pair", "image": ["red.png", "blue.png"], "conversations": [
            {"from": "human", "value": "<image>\nand\n<image>\nWhich colours?"},
            {"from": "gpt", "value": "Red, then blue."}]},
        {"id": "single", "image": "red.png", "conversations": [
            {"from": "human", "value": "<image>\nWhich colour?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "short", "image": ["red.png", "blue.png"], "conversations": [
            {"from": "human", "value": "<image>\nWhich?"}, {"from": "gpt", "value": "Red."}]},
        {"id": "missing", "image": ["red.png", "green.png"], "conversations": [
            {"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "?"}]},
    ]  # fmt: skip
    (tmp_path / "train.json").write_text(json.dumps(records))
    stage = StageConfig(name="multi", datasets=[{"name": "llava-json", "path": str(tmp_path / "train.json")}],
                        max_length=512, precision="fp32")
    with single_thread():
        model = MultimodalModel.from_pretrained(str(trained_tiny_model))
        data = load_stage_data(model, stage, "skip")
        assert [sample.sample_id for sample in data.samples] == ["pair", "single"]
        assert data.images[0] == [tmp_path / "red.png", tmp_path / "blue.png"]
        assert data.skipped == {"llava-json: placeholder_mismatch": 1, "llava-json: image_missing": 1}
        fill = model.markup.fill_id
        assert data.samples[0].input_ids.count(fill) == 2 * model.num_image_tokens
        batch = assemble_batch(model, data, [0, 1], model.tokenizer.pad_token_id)
        assert batch["pixel_values"].shape[0] == 3
        loss = model(**batch).loss
    assert torch.isfinite(loss)
