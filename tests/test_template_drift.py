"""Templates cannot drift from their tokenizers: every registered template x every registered language-model
family (its tiny tokenizer), encoded through the MultimodalProcessor with an image.

For each combination: the label-covered tokens, span by span, decode to exactly each assistant reply plus its
end token (nothing of the user turns, no padding); every label equals its input token; the generation prompt
is a token-level prefix of the training sequence and the reply's first token follows it; no sample is left
with all labels masked (LLaVA's silent zero loss after a "tokenization mismatch"); one BOS at most.
Combinations that are meaningless are skipped through the explicit tables below, which are themselves checked.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.image_markup import ImageMarkup
from medzoo.core.model.image_processing import ImageTransform
from medzoo.core.model.processor import IGNORE_INDEX, MultimodalProcessor, collate
from medzoo.core.plugin_system.manager import components
from medzoo.core.plugin_system.template_lookup import get_template
from medzoo.plugins.language.hf_causal import load_tokenizer

TEMPLATES = components().names("template")
FAMILIES = components().names("language_model")
NUM_IMAGE_TOKENS = 4
CONVERSATION = [
    Message("user", "<image>\nWhat is shown in this image?"),
    Message("assistant", "A small polyp in the colon."),
    Message("user", "Is it benign?"),
    Message("assistant", "Yes, it looks hyperplastic."),
]
REPLIES = [message.content for message in CONVERSATION if message.role == "assistant"]

# ---- the explicit skip tables ----------------------------------------------------------------------------------
#: templates written with a family's control tokens -> the families whose tokenizer has them as special tokens;
#: with any other family's tokenizer the markers would be split into ordinary pieces (meaningless, skipped)
MARKER_FAMILIES = {
    "chatml": ("qwen2", "qwen3"), "qwen2_5": ("qwen2", "qwen3"), "qwen3": ("qwen2", "qwen3"),
    "llama3": ("llama3",), "phi3": ("phi3",), "gemma": ("gemma2", "gemma3"),
}
#: chat_template: families whose tiny tokenizer ships no chat template (binding is a one-line error)...
NO_CHAT_TEMPLATE = ("hf-causal", "llama", "mistral", "phi", "vicuna")
#: ...and those whose chat template drifts (Qwen3 rewrites earlier replies: refused in one line)
DRIFTING_CHAT_TEMPLATE = ("qwen3",)


def skip_reason(template: str, family: str) -> str | None:
    if template == "chat_template" and family in NO_CHAT_TEMPLATE:
        return "the tokenizer ships no chat template"
    if template == "chat_template" and family in DRIFTING_CHAT_TEMPLATE:
        return "the family's chat template drifts (refused)"
    if template in MARKER_FAMILIES and family not in MARKER_FAMILIES[template]:
        return "the template's control tokens are not tokens of this tokenizer"
    return None


COMBINATIONS = [(template, family) for template in TEMPLATES for family in FAMILIES]
RUN = [combination for combination in COMBINATIONS if skip_reason(*combination) is None]
SKIPPED = [combination for combination in COMBINATIONS if skip_reason(*combination) is not None]

#: what each template trains after a reply (``{eos}``: the tokenizer's EOS), and a cue it trains before it
END_OF_REPLY = {
    "mistral_instruct": " {eos}", "vicuna_v1": "{eos}", "colongpt": "{eos}", "llava_med_v1": "\n###",
    "llava_med_v1_vqa": "###", "plain": "\n", "chatml": "<|im_end|>", "qwen2_5": "<|im_end|>", "qwen3": "<|im_end|>",
    "llama3": "<|eot_id|>", "phi3": "<|end|>", "gemma": "<end_of_turn>",
}
#: chat_template: the end-of-turn marker of each family's own template
CHAT_TEMPLATE_END = {"qwen2": "<|im_end|>", "llama3": "<|eot_id|>", "phi3": "<|end|>", "gemma2": "<end_of_turn>",
                     "gemma3": "<end_of_turn>"}
CUE = {"llava_med_v1_vqa": "Assistant: "}
#: the last reply's end also trains the closing space of LLaVA-Med v1.0's "### "
LAST_EXTRA = {"llava_med_v1": " "}


@functools.cache
def tokenizer_of(family: str):
    return load_tokenizer(components().get("language_model", family).factory.tiny_config()["tokenizer"])


def processor(template: str, family: str) -> MultimodalProcessor:
    tokenizer = tokenizer_of(family)
    ids = tokenizer.convert_tokens_to_ids(ImageMarkup.tokens_for("placeholder"))
    transform = ImageTransform(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return MultimodalProcessor(tokenizer, get_template(template), transform, NUM_IMAGE_TOKENS,
                               ImageMarkup.from_ids("placeholder", ids))


def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))


def expected_targets(template: str, family: str) -> list[str]:
    eos = tokenizer_of(family).eos_token
    end = CHAT_TEMPLATE_END.get(family) if template == "chat_template" else END_OF_REPLY.get(template)
    if end is None:  # a template or family registered by another plugin: its own stop string
        end = get_template(template).for_tokenizer(tokenizer_of(family)).stop_strings[0]
    targets = [CUE.get(template, "") + reply + end.format(eos=eos) for reply in REPLIES]
    targets[-1] += LAST_EXTRA.get(template, "")
    return targets


# ---- the drift test ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("template", "family"), RUN)
def test_labels_are_exactly_the_replies_and_generation_prompts_prefix_training(template: str, family: str) -> None:
    encoder = processor(template, family)
    tokenizer = encoder.tokenizer
    sample = encoder.encode(CONVERSATION, [image()])
    ids, labels = sample.input_ids, sample.labels
    assert any(label != IGNORE_INDEX for label in labels), "all labels masked: silent zero loss"
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels, strict=True))
    assert ids.count(encoder.markup.fill_id) == NUM_IMAGE_TOKENS
    assert all(labels[i] == IGNORE_INDEX for i, token in enumerate(ids) if token == encoder.markup.fill_id)

    # each reply starts right where its generation prompt ends, and the generation prompt is a token-level
    # prefix of the training sequence
    starts = []
    for user_turns in range(1, len(REPLIES) + 1):
        prompt = encoder.encode(CONVERSATION[: 2 * user_turns - 1], [image()], add_generation_prompt=True).input_ids
        assert ids[: len(prompt)] == prompt, f"the generation prompt for reply {user_turns} drifts from training"
        starts.append(len(prompt))
    assert all(label == IGNORE_INDEX for label in labels[: starts[0]]), "nothing before the first reply is trained"

    # reply by reply: one unbroken run of labels from its start, decoding to exactly the reply and its end token
    expected = expected_targets(template, family)
    decoded = []
    for index, start in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else len(ids)
        trained = [position for position in range(start, stop) if labels[position] != IGNORE_INDEX]
        assert trained and trained == list(range(start, trained[-1] + 1)), f"reply {index + 1} is not one run"
        decoded.append(tokenizer.decode([ids[position] for position in trained]))
        assert decoded[-1].lstrip(" ") == expected[index], "only a word-start space may come with the first token"
    stops = (*encoder.template.stop_strings, tokenizer.eos_token)
    last = decoded[-1]
    assert any(stop and (last.endswith(stop) or last.rstrip().endswith(stop)) for stop in stops), "learns to stop"

    # one BOS at most, first when the tokenizer adds it
    if tokenizer.bos_token_id is not None:
        adds_bos = tokenizer("x").input_ids[0] == tokenizer.bos_token_id
        assert ids.count(tokenizer.bos_token_id) == int(adds_bos) or tokenizer.bos_token_id == tokenizer.eos_token_id
        assert not adds_bos or ids[0] == tokenizer.bos_token_id

    # padding never carries a label; a one-turn sample is never all-masked either
    single = encoder.encode(CONVERSATION[:2], [image()])
    assert any(label != IGNORE_INDEX for label in single.labels)
    batch = collate([sample, single], tokenizer.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


# ---- the skip list is explicit and justified ------------------------------------------------------------------
def test_the_skip_tables_name_registered_components_and_cover_every_family_default() -> None:
    named = {*MARKER_FAMILIES, "chat_template"}
    assert named <= set(TEMPLATES)
    assert {family for families in MARKER_FAMILIES.values() for family in families} <= set(FAMILIES)
    assert set(NO_CHAT_TEMPLATE) | set(DRIFTING_CHAT_TEMPLATE) <= set(FAMILIES)
    for family in FAMILIES:  # the template every family resolves by default is never skipped
        factory = components().get("language_model", family).factory
        default = factory.resolve_template(tokenizer_of(family))
        assert (default, family) in RUN, (default, family)


@pytest.mark.parametrize(("template", "family"), [c for c in SKIPPED if c[0] in MARKER_FAMILIES])
def test_a_marker_skip_is_a_tokenizer_without_the_markers(template: str, family: str) -> None:
    marker = get_template(template).stop_strings[0]
    assert marker not in tokenizer_of(family).all_special_tokens
    for kept in MARKER_FAMILIES[template]:
        assert marker in tokenizer_of(kept).all_special_tokens


def test_chat_template_skips_are_tokenizers_without_one_or_a_drifting_one() -> None:
    template = get_template("chat_template")
    for family in FAMILIES:
        has_one = tokenizer_of(family).chat_template is not None
        assert has_one == (family not in NO_CHAT_TEMPLATE), family
    for family in NO_CHAT_TEMPLATE:
        with pytest.raises(RecipeError, match=r"has no chat_template; choose a named template instead: ") as raised:
            template.for_tokenizer(tokenizer_of(family))
        assert "\n" not in str(raised.value)
    for family in DRIFTING_CHAT_TEMPLATE:
        with pytest.raises(RecipeError, match=r"template 'chat_template' with tokenizer .*: reply 1 does not start "
                                              r"where its generation prompt ends") as raised:
            template.for_tokenizer(tokenizer_of(family))
        assert "\n" not in str(raised.value)


def test_a_language_model_refuses_a_drifting_chat_template_when_built() -> None:
    qwen3 = components().get("language_model", "qwen3").factory
    with pytest.raises(RecipeError, match="reply 1 does not start where its generation prompt ends"):
        qwen3.from_config(qwen3.tiny_config(), template="chat_template")


def test_chat_template_strips_the_bos_the_tokenizer_adds_itself() -> None:
    for family in ("llama3", "gemma2", "gemma3"):
        tokenizer = tokenizer_of(family)
        chat = [{"role": m.role, "content": m.content} for m in CONVERSATION]
        assert tokenizer.apply_chat_template(chat, tokenize=False).startswith(tokenizer.bos_token)
        bound = get_template("chat_template").for_tokenizer(tokenizer)
        assert not bound.render(CONVERSATION, tokenizer.eos_token).text.startswith(tokenizer.bos_token)
        ids = processor("chat_template", family).encode(CONVERSATION, [image()]).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1, family


def test_a_template_whose_reply_does_not_follow_its_prompt_is_one_line_naming_template_tokenizer_and_turn() -> None:
    tokenizer = tokenizer_of("qwen2")
    drifting = tokenizer_of("qwen2").chat_template.replace("message.content + '<|im_end|>'",
                                                           "message.content | upper + '<|im_end|>'")
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = drifting
    with pytest.raises(RecipeError, match=r"^template 'chat_template' with tokenizer '.*tiny-tokenizer-qwen2': "
                                          r"reply 1 does not start") as raised:
        get_template("chat_template").for_tokenizer(tokenizer)
    assert "\n" not in str(raised.value)
