"""Conversation templates: exact renders, trainable spans, and labels placed on assistant tokens via offsets."""

from __future__ import annotations

import functools

import pytest

from medzoo.core.errors import DataError, RecipeError
from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message
from medzoo.core.model.image_markup import ImageMarkup
from medzoo.core.model.image_processing import ImageTransform
from medzoo.core.model.processor import MultimodalProcessor
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

IM_USER, IM_ASSISTANT = "<|im_start|>user\n", "<|im_start|>assistant\n"
QWEN_SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
THINK = "<think>\n\n</think>\n\n"
L3_USER, L3_ASSISTANT = (f"<|start_header_id|>{role}<|end_header_id|>\n\n" for role in ("user", "assistant"))

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
    # Qwen2/2.5/3 ChatML (Qwen2.5-Instruct's template without a system message writes its default one)
    "chatml": (
        f"{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}A chest X-ray.<|im_end|>\n{IM_USER}Which side?"
        f"<|im_end|>\n{IM_ASSISTANT}Left.<|im_end|>\n",
        f"{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}A chest X-ray.<|im_end|>\n{IM_USER}Which side?"
        f"<|im_end|>\n{IM_ASSISTANT}",
        ["A chest X-ray.<|im_end|>", "Left.<|im_end|>"],
    ),
    "qwen2_5": (
        f"{QWEN_SYSTEM}{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}A chest X-ray.<|im_end|>\n"
        f"{IM_USER}Which side?<|im_end|>\n{IM_ASSISTANT}Left.<|im_end|>\n",
        f"{QWEN_SYSTEM}{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}A chest X-ray.<|im_end|>\n"
        f"{IM_USER}Which side?<|im_end|>\n{IM_ASSISTANT}",
        ["A chest X-ray.<|im_end|>", "Left.<|im_end|>"],
    ),
    "qwen3": (
        f"{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}{THINK}A chest X-ray.<|im_end|>\n"
        f"{IM_USER}Which side?<|im_end|>\n{IM_ASSISTANT}{THINK}Left.<|im_end|>\n",
        f"{IM_USER}<image>\nWhat is shown?<|im_end|>\n{IM_ASSISTANT}{THINK}A chest X-ray.<|im_end|>\n"
        f"{IM_USER}Which side?<|im_end|>\n{IM_ASSISTANT}{THINK}",
        ["A chest X-ray.<|im_end|>", "Left.<|im_end|>"],
    ),
    # Meta-Llama-3-8B-Instruct (the tokenizer prepends <|begin_of_text|>)
    "llama3": (
        f"{L3_USER}<image>\nWhat is shown?<|eot_id|>{L3_ASSISTANT}A chest X-ray.<|eot_id|>{L3_USER}Which side?"
        f"<|eot_id|>{L3_ASSISTANT}Left.<|eot_id|>",
        f"{L3_USER}<image>\nWhat is shown?<|eot_id|>{L3_ASSISTANT}A chest X-ray.<|eot_id|>{L3_USER}Which side?"
        f"<|eot_id|>{L3_ASSISTANT}",
        ["A chest X-ray.<|eot_id|>", "Left.<|eot_id|>"],
    ),
    # Phi-3.5-mini-instruct: EOS after a finished conversation (untrained)
    "phi3": (
        "<|user|>\n<image>\nWhat is shown?<|end|>\n<|assistant|>\nA chest X-ray.<|end|>\n<|user|>\nWhich side?"
        "<|end|>\n<|assistant|>\nLeft.<|end|>\n</s>",
        "<|user|>\n<image>\nWhat is shown?<|end|>\n<|assistant|>\nA chest X-ray.<|end|>\n<|user|>\nWhich side?"
        "<|end|>\n<|assistant|>\n",
        ["A chest X-ray.<|end|>", "Left.<|end|>"],
    ),
    # gemma-2-2b-it / gemma-3-1b-it (the tokenizer prepends <bos>)
    "gemma": (
        "<start_of_turn>user\n<image>\nWhat is shown?<end_of_turn>\n<start_of_turn>model\nA chest X-ray.<end_of_turn>\n"
        "<start_of_turn>user\nWhich side?<end_of_turn>\n<start_of_turn>model\nLeft.<end_of_turn>\n",
        "<start_of_turn>user\n<image>\nWhat is shown?<end_of_turn>\n<start_of_turn>model\nA chest X-ray.<end_of_turn>\n"
        "<start_of_turn>user\nWhich side?<end_of_turn>\n<start_of_turn>model\n",
        ["A chest X-ray.<end_of_turn>", "Left.<end_of_turn>"],
    ),
    # vicuna_v1's layout (rendered here with EOS </s>; with Phi's tokenizer the EOS is <|endoftext|>)
    "colongpt": (
        f"{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT: A chest X-ray.</s>USER: Which side? "
        "ASSISTANT: Left.</s>",
        f"{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT: A chest X-ray.</s>USER: Which side? ASSISTANT:",
        ["A chest X-ray.</s>", "Left.</s>"],
    ),
}
# unbound (no tokenizer yet) chat_template renders plain ChatML
EXPECTED["chat_template"] = EXPECTED["chatml"]
STOP_STRINGS = {
    "mistral_instruct": ("</s>",), "vicuna_v1": ("</s>",), "llava_med_v1": ("###",), "llava_med_v1_vqa": ("###",),
    "plain": ("\n",), "chatml": ("<|im_end|>",), "qwen2_5": ("<|im_end|>",), "qwen3": ("<|im_end|>",),
    "llama3": ("<|eot_id|>",), "phi3": ("<|end|>",), "gemma": ("<end_of_turn>",), "colongpt": ("<|endoftext|>",), "chat_template": ("<|im_end|>",),
}
TEMPLATE_NAMES = components().names("template")
#: the tiny tokenizer family each template is exercised with (its markers are that tokenizer's special tokens;
#: chat_template reads the tokenizer's own template); the rest use the base medzoo-tiny tokenizer
TOKENIZER_FAMILY_OF = {"chat_template": "qwen2", "chatml": "qwen2", "qwen2_5": "qwen2", "qwen3": "qwen3", "llama3": "llama3",
              "phi3": "phi3", "gemma": "gemma3", "colongpt": "phi"}


def template(name: str):
    return components().get("template", name).factory


@functools.cache
def tokenizer_for(name: str):
    return load_tiny_tokenizer(family=TOKENIZER_FAMILY_OF.get(name))


def bound(name: str):
    """The template as a processor uses it: bound to the tokenizer it is exercised with."""
    return template(name).for_tokenizer(tokenizer_for(name))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tiny_tokenizer()


def test_every_built_in_template_is_pinned() -> None:
    builtin = [name for name in TEMPLATE_NAMES if components().get("template", name).provider.startswith("medzoo.")]
    assert set(EXPECTED) == set(builtin)


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
    rendered = bound(name).render(CONVERSATION, tokenizer_for(name).eos_token)
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
    assert isinstance(bound(name).stop_strings, tuple) and bound(name).stop_strings


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_turn_order_is_checked(name: str) -> None:
    for candidate in (template(name), bound(name)):
        with pytest.raises(DataError, match="turn 2"):
            candidate.render([Message("user", "a"), Message("user", "b")], EOS)
        with pytest.raises(DataError, match="end with a user turn"):
            candidate.render(CONVERSATION, EOS, add_generation_prompt=True)
        with pytest.raises(DataError, match="no user turn"):
            candidate.render([Message("system", "hi")], EOS)


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
    chatml = f"<|im_start|>system\nBe brief.<|im_end|>\n{IM_USER}<image>\nWhat is shown?<|im_end|>\n"
    assert template("chatml").render(messages, EOS).text == f"{chatml}{IM_ASSISTANT}A chest X-ray.<|im_end|>\n"
    assert template("qwen2_5").render(messages, EOS).text == f"{chatml}{IM_ASSISTANT}A chest X-ray.<|im_end|>\n"
    assert template("qwen3").render(messages, EOS).text == f"{chatml}{IM_ASSISTANT}{THINK}A chest X-ray.<|im_end|>\n"
    assert template("llama3").render(messages, EOS).text == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        f"{L3_USER}<image>\nWhat is shown?<|eot_id|>{L3_ASSISTANT}A chest X-ray.<|eot_id|>"
    )
    assert template("phi3").render(messages, EOS).text == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\n<image>\nWhat is shown?<|end|>\n<|assistant|>\nA chest X-ray.<|end|>\n</s>"
    )
    # Gemma has no system role: Gemma 3 writes it at the start of the first user turn
    assert template("gemma").render(messages, EOS).text == (
        "<start_of_turn>user\nBe brief.\n\n<image>\nWhat is shown?<end_of_turn>\n"
        "<start_of_turn>model\nA chest X-ray.<end_of_turn>\n"
    )


def conv_colongpt_prompt(messages: list[Message]) -> str:
    """ai4colonoscopy/IntelliScope ``colongpt/conversation.py`` ``Conversation.get_prompt`` for
    ``conv_colongpt`` (``SeparatorStyle.TWO``, ``sep=" "``, ``sep2="<|endoftext|>"``)."""
    seps = [" ", "<|endoftext|>"]
    text = VICUNA_SYSTEM + seps[0]
    roles = {"user": "USER", "assistant": "ASSISTANT"}
    for index, message in enumerate(messages):
        text += roles[message.role] + ": " + message.content + seps[index % 2]
    return text


def test_colongpt_is_vicuna_v1_with_phis_eos_and_renders_as_conv_colongpt() -> None:
    phi_eos = "<|endoftext|>"
    assert tokenizer_for("colongpt").eos_token == phi_eos
    rendered = template("colongpt").render(CONVERSATION, phi_eos)
    assert rendered.text == conv_colongpt_prompt(CONVERSATION)
    assert rendered.text == template("vicuna_v1").render(CONVERSATION, phi_eos).text
    assert [rendered.text[a:b] for a, b in rendered.target_spans] == [f"A chest X-ray.{phi_eos}", f"Left.{phi_eos}"]
    assert template("colongpt").image_placement == "front"  # data_utils.py preprocess_multimodal


def test_image_placeholder_stays_one_token() -> None:
    for name in TEMPLATE_NAMES:
        tokenizer = tokenizer_for(name)
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
        ids = tokenizer(bound(name).render(CONVERSATION, tokenizer.eos_token).text).input_ids
        assert ids.count(image_id) == 1, name
        assert tokenizer.unk_token_id not in ids, name


def label_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """A token is a target when its character range overlaps a target span (zero-width tokens never are)."""
    return [end > start and any(start < span_end and end > span_start for span_start, span_end in spans)
            for start, end in offsets]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_offsets_put_labels_on_exactly_the_assistant_tokens(name: str) -> None:
    tokenizer = tokenizer_for(name)
    rendered = bound(name).render(CONVERSATION, tokenizer.eos_token)
    encoding = tokenizer(rendered.text, return_offsets_mapping=True)
    ids, offsets = encoding.input_ids, encoding.offset_mapping
    labels = [token if target else -100 for token, target in zip(ids, label_mask(offsets, rendered.target_spans),
                                                                   strict=True)]
    if tokenizer.bos_token_id is not None and tokenizer("x").input_ids[0] == tokenizer.bos_token_id:
        assert ids[0] == tokenizer.bos_token_id and labels[0] == -100
        assert ids.count(tokenizer.bos_token_id) == 1, "one BOS, never two"
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
    stop_id = tokenizer.convert_tokens_to_ids(bound(name).stop_strings[0])
    if stop_id in tokenizer.all_special_ids:  # a one-token end marker is trained after each reply
        assert labels.count(stop_id) == 2


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_generation_prompt_tokens_prefix_the_training_tokens(name: str) -> None:
    tokenizer = tokenizer_for(name)
    full = tokenizer(bound(name).render(CONVERSATION, tokenizer.eos_token).text).input_ids
    prompt = tokenizer(bound(name).prompt(CONVERSATION[:3], tokenizer.eos_token)).input_ids
    assert full[: len(prompt)] == prompt


def processor(name: str) -> MultimodalProcessor:
    tokenizer = tokenizer_for(name)
    ids = tokenizer.convert_tokens_to_ids(ImageMarkup.tokens_for("placeholder"))
    transform = ImageTransform(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return MultimodalProcessor(tokenizer, template(name), transform, 4, ImageMarkup.from_ids("placeholder", ids))


@pytest.mark.parametrize("answer", ["h&e", "7 nuclei", "{<12><30><44><60>}", "yes"])
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_processor_labels_every_token_generated_after_the_prompt(name: str, answer: str) -> None:
    """A reply whose first piece does not absorb the word-start space ("▁", "h", "&", "e") still has that
    lone "▁" labelled: it is the first token the model has to produce after the prompt."""
    encoder = processor(name)
    question = [Message("user", "<image>\nWhat stain was used?")]
    sample = encoder.encode_text([*question, Message("assistant", answer)], num_images=1)
    prompt = encoder.encode_text(question, num_images=1, add_generation_prompt=True)
    n = len(prompt.input_ids)
    assert sample.input_ids[:n] == prompt.input_ids
    assert all(label == -100 for label in sample.labels[:n])
    trained = [index for index, label in enumerate(sample.labels) if label != -100]
    assert trained == list(range(n, trained[-1] + 1)), "every token after the prompt up to the end marker"
    assert sample.labels[n : trained[-1] + 1] == sample.input_ids[n : trained[-1] + 1]
    after = encoder.tokenizer.decode(sample.input_ids[trained[-1] + 1 :], skip_special_tokens=True)
    assert after.strip() == "", "only whitespace (or EOS) follows the trained end marker"


# ---- hand-written templates equal the family's own chat template ---------------------------------------------
#: hand-written template -> the tiny family tokenizers whose chat template it must reproduce
HAND_WRITTEN = {"qwen2_5": ("qwen2",), "qwen3": ("qwen3",), "llama3": ("llama3",), "phi3": ("phi3",),
                "gemma": ("gemma2", "gemma3")}
#: families whose chat template refuses a system message
NO_SYSTEM_ROLE = ("gemma2",)
CONVERSATIONS = {
    "1-turn": CONVERSATION[:2],
    "2-turn": CONVERSATION,
    "1-turn+system": [Message("system", "Be brief."), *CONVERSATION[:2]],
    "2-turn+system": [Message("system", "Be brief."), *CONVERSATION],
}


@functools.cache
def family_chat_template(family: str):
    return template("chat_template").for_tokenizer(load_tiny_tokenizer(family=family))


def official_qwen3(messages: list[Message], add_generation_prompt: bool) -> str:
    """Qwen3's own template in non-thinking mode (``enable_thinking=False``), as its tokenizer renders it."""
    tokenizer = load_tiny_tokenizer(family="qwen3")
    chat = [{"role": m.role, "content": m.content} for m in messages]
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         enable_thinking=False)


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_hand_written_template_equals_the_family_chat_template(name: str, conversation: str) -> None:
    messages = CONVERSATIONS[conversation]
    for family in HAND_WRITTEN[name]:
        eos = load_tiny_tokenizer(family=family).eos_token
        hand = template(name)
        if name == "qwen3":
            # Qwen3's template drops the empty think block from replies before the last user turn; medzoo keeps
            # it in every reply (no single training sequence can match both): that is the only difference
            def official(chat: list[Message], generation: bool) -> str:
                text = official_qwen3(chat, generation)
                return text.replace(f"{IM_ASSISTANT}A chest", f"{IM_ASSISTANT}{THINK}A chest") if sum(m.role == "user" for m in chat) > 1 else text

            assert hand.render(messages, eos).text == official(messages, False)
            assert hand.prompt(messages[:-1], eos) == official(messages[:-1], True)
            continue
        if "system" in conversation and family in NO_SYSTEM_ROLE:
            with pytest.raises(DataError, match="System role not supported"):
                family_chat_template(family).render(messages, eos)
            continue
        official = family_chat_template(family)
        rendered, expected = hand.render(messages, eos), official.render(messages, eos)
        assert rendered.text == expected.text, family
        assert rendered.target_spans == expected.target_spans, family
        prompt = messages[:-1]
        assert hand.prompt(prompt, eos) == official.prompt(prompt, eos), family
        assert hand.stop_strings == official.stop_strings, family


def test_chatml_equals_qwen2_5_when_a_system_message_is_given() -> None:
    messages = CONVERSATIONS["2-turn+system"]
    assert template("chatml").render(messages, "<|im_end|>").text == family_chat_template("qwen2").render(
        messages, "<|im_end|>").text


def test_a_tokenizer_without_chat_template_is_a_one_line_error_suggesting_the_named_templates() -> None:
    with pytest.raises(RecipeError, match=r"tokenizer '.*tiny-tokenizer' has no chat_template; choose a named "
                                          r"template instead: .*llama3.*vicuna_v1") as raised:
        template("chat_template").for_tokenizer(load_tiny_tokenizer())
    assert "\n" not in str(raised.value)
