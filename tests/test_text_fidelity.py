"""Prompt text, token ids and labels equal what the official LLaVA / LLaVA-Med code produces.

Each oracle below is an independent re-implementation of an official function (named in its docstring),
run on the same tokenizer in both ``legacy`` modes: the shipped tiny tokenizer is non-legacy (a word-start
piece only at the start of the text, as current transformers builds Llama/Mistral tokenizers without a
``legacy`` key); the legacy variant prepends one after every special token, as SentencePiece did.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from medzoo.core.interfaces.conversation import Message, place_images
from medzoo.core.model.image_markup import IM_END, IM_PATCH, IM_START, ImageMarkup
from medzoo.core.model.image_processing import ImageTransform
from medzoo.core.model.processor import IGNORE_INDEX, MultimodalProcessor
from medzoo.core.plugin_system.template_lookup import get_template
from medzoo.plugins.language.tiny_tokenizer import load_tiny_tokenizer, tiny_tokenizer_path

NUM_IMAGE_TOKENS = 4
SIMPLE_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def legacy_tokenizer():
    spec = json.loads((tiny_tokenizer_path() / "tokenizer.json").read_text())
    assert spec["pre_tokenizer"]["prepend_scheme"] == "first", "the shipped tokenizer is the non-legacy one"
    spec["pre_tokenizer"]["prepend_scheme"] = "always"
    config = json.loads((tiny_tokenizer_path() / "tokenizer_config.json").read_text())
    from tokenizers import Tokenizer

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token=config["bos_token"], eos_token=config["eos_token"], unk_token=config["unk_token"],
        pad_token=config["pad_token"], extra_special_tokens=config["extra_special_tokens"],
    )


TOKENIZERS = {"non-legacy": load_tiny_tokenizer, "legacy": legacy_tokenizer}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


def processor(tokenizer, template: str, markup: str = "placeholder", **options) -> MultimodalProcessor:
    ids = tokenizer.convert_tokens_to_ids(ImageMarkup.tokens_for(markup))
    transform = ImageTransform(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return MultimodalProcessor(
        tokenizer, get_template(template), transform, NUM_IMAGE_TOKENS, ImageMarkup.from_ids(markup, ids), **options
    )


def official_tokenizer_image_token(prompt: str, tokenizer, image_token_index: int) -> list[int]:
    """haotian-liu/LLaVA (and microsoft/LLaVA-Med main) ``llava/mm_utils.py`` ``tokenizer_image_token``."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    offset = 1 if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0
    ids = [chunks[0][0]] if offset else []
    for index, chunk in enumerate(chunks):
        if index:
            ids.extend([image_token_index] * (offset + 1))
            ids = ids[:-offset] if offset else ids  # the separator's copies beyond one are cut with x[offset:]
        ids.extend(chunk[offset:])
    return ids


def official_simple_prompt(question_turn: str) -> str:
    """LLaVA-Med v1.0.0 ``llava/eval/model_vqa_med.py`` ``eval_model`` with ``conv_templates['simple']``
    (``Conversation.get_prompt``, SeparatorStyle.SINGLE, sep ``###``)."""
    qs = question_turn.replace("<image>", "").strip() + "\n" + "<image>"
    messages = [("Human", "Hi!"), ("Assistant", "Hi there!  How can I help you today?\n"), ("Human", qs)]
    prompt = SIMPLE_SYSTEM + "###"
    for role, message in messages:
        prompt += role + ": " + message + "###"
    return prompt


def test_the_two_tokenizers_really_differ_after_an_image(tokenizer) -> None:
    """Guard: whole-string tokenisation of text after ``<image>`` depends on the mode; chunk-wise does not."""
    non_legacy, legacy = load_tiny_tokenizer(), legacy_tokenizer()
    text = "[INST] <image>\nWhat is shown? [/INST]"
    assert non_legacy(text).input_ids != legacy(text).input_ids
    image_id = non_legacy.convert_tokens_to_ids("<image>")
    assert official_tokenizer_image_token(text, non_legacy, image_id) == official_tokenizer_image_token(
        text, legacy, image_id
    )


@pytest.mark.parametrize("question", ["What is shown?\n<image>", "<image>\nWhat is shown?", "  What is shown? <image> "])
def test_v15_generation_prompt_ids_equal_tokenizer_image_token(tokenizer, question: str) -> None:
    """LLaVA-Med v1.5 ``model_vqa.py``: ``<image>\\n`` + question, ``mistral_instruct``, ``tokenizer_image_token``."""
    proc = processor(tokenizer, "mistral_instruct")
    qs = "<image>\n" + question.replace("<image>", "").strip()
    official_prompt = f"[INST] {qs} [/INST]"  # conv_mistral_instruct.get_prompt() (LLAMA_2 style, empty system)
    rendered = proc.template.prompt(place_images([Message("user", question)], proc.image_placement), "</s>")
    assert rendered == official_prompt
    sample = proc.encode_text([Message("user", question)], 1, add_generation_prompt=True)
    official = official_tokenizer_image_token(official_prompt, tokenizer, proc.markup.placeholder_id)
    expected = []
    for token in official:
        expected.extend([proc.markup.fill_id] * NUM_IMAGE_TOKENS if token == proc.markup.placeholder_id else [token])
    assert sample.input_ids == expected


def test_v15_training_ids_equal_tokenizer_image_token_and_labels_cover_the_replies(tokenizer) -> None:
    proc = processor(tokenizer, "mistral_instruct")
    messages = [
        Message("user", "What is shown?\n<image>"), Message("assistant", "A chest X-ray."),
        Message("user", "Which side?"), Message("assistant", "Left."),
    ]
    text = "[INST] <image>\nWhat is shown? [/INST] A chest X-ray. </s>[INST] Which side? [/INST] Left. </s>"
    ids, _ = proc.tokenize(proc.template.render(place_images(messages, "front"), "</s>").text)
    assert ids == official_tokenizer_image_token(text, tokenizer, proc.markup.placeholder_id)
    sample = proc.encode_text(messages, 1)
    targets = tokenizer.decode([label for label in sample.labels if label != IGNORE_INDEX])
    assert targets.replace(" ", "") == "Achestx-ray.</s>Left.</s>".replace("x", "X")


@pytest.mark.parametrize("question", ["<image>\nIs there a fracture?", "Is there a fracture?\n<image>"])
def test_v10_evaluation_prompt_is_model_vqa_med(tokenizer, question: str) -> None:
    proc = processor(tokenizer, "llava_med_v1_vqa", markup="im_start_end")
    rendered = proc.template.prompt(place_images([Message("user", question)], proc.image_placement), "</s>")
    assert rendered == official_simple_prompt(question)
    assert not rendered.endswith("Assistant:"), "model_vqa_med.py gives no Assistant: cue"
    sample = proc.encode_text([Message("user", question)], 1, add_generation_prompt=True)
    image = [proc.markup.start_id, *[proc.markup.fill_id] * NUM_IMAGE_TOKENS, proc.markup.end_id]
    position = sample.input_ids.index(proc.markup.start_id)
    assert sample.input_ids[position : position + len(image)] == image
    assert tokenizer.decode(sample.input_ids[position + len(image) :]).strip() == "###"


def official_v0_preprocess(conversation: list[dict], tokenizer, image_tokens: int) -> tuple[list[int], list[int]]:
    """LLaVA-Med v1.0.0 ``llava/train/train.py``: ``preprocess_multimodal`` (``<image>`` -> ``<im_start>`` +
    N x ``<im_patch>`` + ``<im_end>`` in place), then ``preprocess`` with ``_add_speaker_and_signal`` and
    ``_mask_targets`` (``default_conversation = conv_v1_2``)."""
    replace = IM_START + IM_PATCH * image_tokens + IM_END
    values = [turn["value"].replace("<image>", replace) for turn in conversation]
    header = f"{SIMPLE_SYSTEM}\n\n"
    signalled = []
    for turn, value in zip(conversation, values, strict=True):
        role = "Human" if turn["from"] == "human" else "Assistant"
        signalled.append("### " + role + ": " + value + "\n")
    text = header + "".join(signalled) + "### "
    input_ids = tokenizer(text).input_ids
    target = list(input_ids)
    lengths = [len(tokenizer(piece).input_ids) for piece in [header, *signalled]]
    cursor = lengths[0]
    target[:cursor] = [IGNORE_INDEX] * cursor
    for length, turn in zip(lengths[1:], conversation, strict=True):
        if turn["from"] == "human":
            target[cursor + 2 : cursor + length] = [IGNORE_INDEX] * len(target[cursor + 2 : cursor + length])
        cursor += length
    return input_ids, target


CONVERSATION = [
    {"from": "human", "value": "<image>\nDescribe the figure concisely."},
    {"from": "gpt", "value": "Axial CT of the chest showing a left pleural effusion."},
    {"from": "human", "value": "Which side?"},
    {"from": "gpt", "value": "Left."},
]


def as_messages(conversation: list[dict]) -> list[Message]:
    return [Message("user" if t["from"] == "human" else "assistant", t["value"]) for t in conversation]


def test_v10_training_ids_and_official_masking_equal_the_official_preprocess() -> None:
    """With the legacy tokenizer (v1.0 trained with SentencePiece, ``use_fast=False``) the ids are the official
    ids, and ``label_masking: official`` reproduces ``_mask_targets``' drifting labels bit for bit."""
    tokenizer = legacy_tokenizer()
    official_ids, official_labels = official_v0_preprocess(CONVERSATION, tokenizer, NUM_IMAGE_TOKENS)
    proc = processor(tokenizer, "llava_med_v1", markup="im_start_end", label_masking="official")
    sample = proc.encode_text(as_messages(CONVERSATION), 1)
    assert sample.input_ids == official_ids
    assert sample.labels == official_labels


def test_v10_default_masking_labels_exactly_the_replies_where_the_official_drifts() -> None:
    tokenizer = legacy_tokenizer()
    exact = processor(tokenizer, "llava_med_v1", markup="im_start_end").encode_text(as_messages(CONVERSATION), 1)
    official = processor(tokenizer, "llava_med_v1", markup="im_start_end", label_masking="official")
    drifted = official.encode_text(as_messages(CONVERSATION), 1)
    assert exact.input_ids == drifted.input_ids
    targets = tokenizer.decode([t for t in exact.labels if t != IGNORE_INDEX])
    assert targets.replace(" ", "") == "AxialCTofthechestshowingaleftpleuraleffusion.\n###Left.\n###"
    assert exact.labels != drifted.labels, "the official masking supervises role tags and question words"
    official_targets = [t for t in drifted.labels if t != IGNORE_INDEX]
    assert len(official_targets) > len([t for t in exact.labels if t != IGNORE_INDEX])


def test_official_masking_needs_a_template_that_has_one(tokenizer) -> None:
    with pytest.raises(ValueError, match="has no official masking"):
        processor(tokenizer, "mistral_instruct", label_masking="official")


@pytest.mark.parametrize(
    ("template", "placement", "expected"),
    [
        ("mistral_instruct", None, "[INST] <image>\nWhat is it? [/INST]"),
        ("mistral_instruct", "keep", "[INST] What is it?\n<image> [/INST]"),
        ("llava_med_v1", None, "What is it?\n<image>"),
        ("llava_med_v1", "front", "<image>\nWhat is it?"),
    ],
)
def test_image_placement_follows_each_lineage(tokenizer, template: str, placement, expected: str) -> None:
    """LLaVA-1.5 ``preprocess_multimodal`` moves ``<image>`` to the front of its turn; v1.0 leaves it."""
    proc = processor(tokenizer, template, image_placement=placement)
    messages = place_images([Message("user", "What is it?\n<image>")], proc.image_placement)
    assert expected in proc.template.prompt(messages, "</s>")


def test_official_sampling_is_the_v10_default_and_greedy_an_option() -> None:
    from medzoo.core.evaluation.evaluate_model import get_benchmark, protocol_for

    class Language:
        template_name = "llava_med_v1"

    class Model:
        language = Language()

    benchmark = get_benchmark("vqa-rad")
    default = protocol_for(Model(), benchmark, {})
    assert default.template == "llava_med_v1_vqa"
    assert default.settings.temperature == 0.7 and default.settings.max_new_tokens == 1024
    assert default.describe()["decoding"] == "sampled (temperature 0.7)"
    greedy = protocol_for(Model(), benchmark, {"decoding": "greedy"})
    assert greedy.settings.temperature == 0 and greedy.describe()["decoding"] == "greedy"
    Language.template_name = "mistral_instruct"
    assert protocol_for(Model(), benchmark, {}).describe() == {
        "prompt_template": "mistral_instruct", "decoding": "greedy", "seed": 0,
    }


def test_a_v10_model_is_evaluated_with_the_papers_prompt_end_to_end(tmp_path) -> None:
    """A tiny llava_med_v1 model answers a synthetic VQA-RAD through ``evaluate``: the answer file holds the
    model_vqa_med.py prompt's question, metrics.json the protocol, and a rerun with the same seed is identical."""
    from medzoo.app.data_synth import synthesize
    from medzoo.core.evaluation.evaluate_model import evaluate
    from medzoo.core.model.build import build_model

    synthesize(tmp_path / "data", seed=3, sizes={"train": 4, "val": 2, "test": 6})
    torch.manual_seed(0)
    model = build_model({
        "vision": {"name": "clip"}, "connector": {"name": "linear"},
        "language": {"name": "llama", "template": "llava_med_v1"}, "image_markup": "im_start_end",
    }).eval()
    options = {"root": str(tmp_path / "data"), "max_new_tokens": 4}
    first = evaluate(model, "synth-vqa-rad", tmp_path / "a", options=options, batch_size=4, echo=lambda *_: None)
    assert first["protocol"] == {"prompt_template": "llava_med_v1_vqa", "decoding": "sampled (temperature 0.7)",
                                 "seed": 0}
    again = evaluate(model, "synth-vqa-rad", tmp_path / "b", options=options, batch_size=4, echo=lambda *_: None)
    answers = [(tmp_path / d / "predictions.jsonl").read_text().splitlines() for d in "ab"]
    assert [json.loads(line)["text"] for line in answers[0]] == [json.loads(line)["text"] for line in answers[1]]
    greedy = evaluate(model, "synth-vqa-rad", tmp_path / "c", options={**options, "decoding": "greedy"},
                      batch_size=4, echo=lambda *_: None)
    assert greedy["protocol"]["decoding"] == "greedy" and greedy["n"] == first["n"] == again["n"]
