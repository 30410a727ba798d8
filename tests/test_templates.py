"""Conversation templates: exact renders, trainable spans, and labels placed on assistant tokens via offsets."""

from __future__ import annotations

import pytest

from medzoo.core.errors import DataError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.language.tiny_tokenizer import load_tiny_tokenizer

EOS = "</s>"
CONVERSATION = [
    Message("user", "<image>\nWhat is shown?"),
    Message("assistant", "A chest X-ray."),
    Message("user", "Which side?"),
    Message("assistant", "Left."),
]
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# conv_v1_2.system (= simple_conv.system), microsoft/LLaVA-Med v1.0.0 llava/conversation.py
LLAVA_MED_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# template -> (full two-turn text, generation prompt for the second question, target texts)
EXPECTED = {
    "mistral_instruct": (
        "[INST] <image>\nWhat is shown? [/INST] A chest X-ray. </s>[INST] Which side? [/INST] Left. </s>",
        "[INST] <image>\nWhat is shown? [/INST] A chest X-ray. </s>[INST] Which side? [/INST]",
        ["A chest X-ray. </s>", "Left. </s>"],
    ),
    "vicuna_v1": (
        f"{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT: A chest X-ray.</s>USER: Which side? "
        "ASSISTANT: Left.</s>",
        f"{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT: A chest X-ray.</s>USER: Which side? ASSISTANT:",
        ["A chest X-ray.</s>", "Left.</s>"],
    ),
    # v1.0.0 llava/train/train.py _add_speaker_and_signal: "### " + role + ": " + value + "\n" per turn, then "### "
    "llava_med_v1": (
        f"{LLAVA_MED_SYSTEM}\n\n### Human: <image>\nWhat is shown?\n### Assistant: A chest X-ray.\n### Human: "
        "Which side?\n### Assistant: Left.\n### ",
        f"{LLAVA_MED_SYSTEM}\n\n### Human: <image>\nWhat is shown?\n### Assistant: A chest X-ray.\n### Human: "
        "Which side?\n### Assistant:",
        ["A chest X-ray.\n###", "Left.\n### "],
    ),
    # v1.0.0 llava/eval/model_vqa_med.py with conv_templates["simple"] (SeparatorStyle.SINGLE)
    "llava_med_v1_vqa": (
        f"{LLAVA_MED_SYSTEM}###Human: Hi!###Assistant: Hi there!  How can I help you today?\n###"
        "Human: <image>\nWhat is shown?###Assistant: A chest X-ray.###Human: Which side?###Assistant: Left.###",
        f"{LLAVA_MED_SYSTEM}###Human: Hi!###Assistant: Hi there!  How can I help you today?\n###"
        "Human: <image>\nWhat is shown?###Assistant: A chest X-ray.###Human: Which side?###",
        ["Assistant: A chest X-ray.###", "Assistant: Left.###"],
    ),
    "plain": ("<image>A chest X-ray.\nLeft.\n", "<image>A chest X-ray.\n", ["A chest X-ray.\n", "Left.\n"]),
}
STOP_STRINGS = {
    "mistral_instruct": ("</s>",), "vicuna_v1": ("</s>",), "llava_med_v1": ("###",), "llava_med_v1_vqa": ("###",),
    "plain": ("\n",),
}
TEMPLATE_NAMES = components().names("template")


def template(name: str):
    return components().get("template", name).factory


@pytest.fixture(scope="module")
def tokenizer():
    return load_tiny_tokenizer()


def test_every_built_in_template_is_pinned() -> None:
    assert set(EXPECTED) <= set(TEMPLATE_NAMES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_two_turn_render_and_generation_prompt(name: str) -> None:
    full, prompt, targets = EXPECTED[name]
    rendered = template(name).render(CONVERSATION, EOS)
    assert rendered.text == full
    assert [rendered.text[start:end] for start, end in rendered.target_spans] == targets
    generation = template(name).render(CONVERSATION[:3], EOS, add_generation_prompt=True)
    assert generation.text == prompt
    assert template(name).prompt(CONVERSATION[:3], EOS) == prompt
    assert [generation.text[start:end] for start, end in generation.target_spans] == targets[:1]
    assert full.startswith(prompt)
    assert template(name).stop_strings == STOP_STRINGS[name]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_spans_are_ordered_inside_the_text_and_cover_every_reply(name: str) -> None:
    rendered = template(name).render(CONVERSATION, EOS)
    assert rendered.target_spans, "a conversation with replies must have targets"
    previous_end = 0
    for start, end in rendered.target_spans:
        assert previous_end <= start < end <= len(rendered.text)
        previous_end = end
    replies = [m.content for m in CONVERSATION if m.role == "assistant"]
    targets = [rendered.text[start:end] for start, end in rendered.target_spans]
    assert len(targets) == len(replies)
    for reply, target in zip(replies, targets, strict=True):
        # the reply plus its end marker; llava_med_v1_vqa also trains the role cue it generates after "###"
        cue = "Assistant: " if name == "llava_med_v1_vqa" else ""
        assert target.startswith(cue + reply) and len(target) > len(cue + reply), "reply plus its end marker"
    assert rendered.text.count(IMAGE_PLACEHOLDER) == 1
    assert isinstance(template(name).stop_strings, tuple) and template(name).stop_strings


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_turn_order_is_checked(name: str) -> None:
    with pytest.raises(DataError, match="turn 2"):
        template(name).render([Message("user", "a"), Message("user", "b")], EOS)
    with pytest.raises(DataError, match="end with a user turn"):
        template(name).render(CONVERSATION, EOS, add_generation_prompt=True)
    with pytest.raises(DataError, match="no user turn"):
        template(name).render([Message("system", "hi")], EOS)


def test_system_messages() -> None:
    messages = [Message("system", "Be brief."), *CONVERSATION[:2]]
    assert template("mistral_instruct").render(messages, EOS).text == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat is shown? [/INST] A chest X-ray. </s>"
    )
    assert template("vicuna_v1").render(messages, EOS).text == (
        "Be brief. USER: <image>\nWhat is shown? ASSISTANT: A chest X-ray.</s>"
    )
    assert template("llava_med_v1").render(messages, EOS).text.startswith("Be brief.\n\n### Human: <image>")
    assert template("plain").render(messages, EOS).text == "<image>A chest X-ray.\n"


def test_image_placeholder_stays_one_token(tokenizer) -> None:
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    for name in TEMPLATE_NAMES:
        ids = tokenizer(template(name).render(CONVERSATION, tokenizer.eos_token).text).input_ids
        assert ids.count(image_id) == 1, name
        assert tokenizer.unk_token_id not in ids, name


def label_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """A token is a target when its character range overlaps a target span (zero-width tokens never are)."""
    return [end > start and any(start < span_end and end > span_start for span_start, span_end in spans)
            for start, end in offsets]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_offsets_put_labels_on_exactly_the_assistant_tokens(name: str, tokenizer) -> None:
    rendered = template(name).render(CONVERSATION, tokenizer.eos_token)
    encoding = tokenizer(rendered.text, return_offsets_mapping=True)
    ids, offsets = encoding.input_ids, encoding.offset_mapping
    labels = [token if target else -100 for token, target in zip(ids, label_mask(offsets, rendered.target_spans),
                                                                   strict=True)]
    assert ids[0] == tokenizer.bos_token_id and labels[0] == -100
    covered = set()
    for label, (start, end) in zip(labels, offsets, strict=True):
        if label != -100:
            covered.update(range(start, end))
            outside = [i for i in range(start, end) if not any(a <= i < b for a, b in rendered.target_spans)]
            assert all(rendered.text[i] == " " for i in outside), "only a word-start space may lie outside"
    for start, end in rendered.target_spans:
        assert set(range(start, end)) <= covered
    # the labelled tokens decode back to the replies and their end markers
    decoded = tokenizer.decode([label for label in labels if label != -100]).replace(" ", "")
    assert decoded == "".join(rendered.text[a:b] for a, b in rendered.target_spans).replace(" ", "")
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    assert image_id in ids and image_id not in labels
    if EOS in "".join(EXPECTED[name][2]):
        assert labels.count(tokenizer.eos_token_id) == ids.count(tokenizer.eos_token_id) == 2


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_generation_prompt_tokens_prefix_the_training_tokens(name: str, tokenizer) -> None:
    full = tokenizer(template(name).render(CONVERSATION, tokenizer.eos_token).text).input_ids
    prompt = tokenizer(template(name).prompt(CONVERSATION[:3], tokenizer.eos_token)).input_ids
    assert full[: len(prompt)] == prompt


@pytest.fixture(scope="module")
def tiny_model():
    from medzoo.core.model.build import build_model
    from medzoo.core.recipes.loading import load_recipe

    return build_model(load_recipe("tiny").config.model)


@pytest.mark.parametrize("answer", ["h&e", "7 nuclei", "{<12><30><44><60>}", "yes"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_processor_labels_every_token_generated_after_the_prompt(name: str, answer: str, tiny_model) -> None:
    """A reply whose first piece does not absorb the word-start space ("▁", "h", "&", "e") still has that
    lone "▁" labelled: it is the first token the model has to produce after the prompt."""
    from medzoo.core.inference import processor_for

    processor = processor_for(tiny_model, name)
    question = [Message("user", "<image>\nWhat stain was used?")]
    sample = processor.encode_text([*question, Message("assistant", answer)], num_images=1)
    prompt = processor.encode_text(question, num_images=1, add_generation_prompt=True)
    n = len(prompt.input_ids)
    assert sample.input_ids[:n] == prompt.input_ids
    assert all(label == -100 for label in sample.labels[:n])
    assert sample.labels[n:] == sample.input_ids[n:], "every token after the prompt is a target"
