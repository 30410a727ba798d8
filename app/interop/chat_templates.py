"""Jinja chat templates (for transformers' ``apply_chat_template``, lmms-eval, VLMEvalKit and vLLM) equal to
medzoo's templates.

Message content may be a string (medzoo style, with the literal ``<image>``) or a list of parts
(``{"type": "image"}``, ``{"type": "text", "text": ...}``); an image part renders as ``<image>\\n``.
As llava-hf's templates, the text holds no BOS: the consumers tokenise it with special tokens
(``LlavaProcessor(text=...)`` by default, transformers' pipeline and ``processor.apply_chat_template(...,
tokenize=True)``, lmms-eval's ``llava_hf``, VLMEvalKit's ``LLaVA_HF``), and the tokenizer prepends its BOS as
medzoo does. :func:`calibrated_chat_template` checks the rendered ids against medzoo's tokenisation (string and
list content) and picks what follows an ``<image>`` (nothing, or a space for a non-legacy tokenizer).
A model trained with the tokenizer's own template (``chat_template``) gets that template behind a prelude
(:func:`own_chat_template`) that turns list content into medzoo's string form.
"""

from __future__ import annotations

from typing import Any

from medzoo.plugins.templates.llava_med_v1 import LLAVA_MED_SYSTEM
from medzoo.plugins.templates.vicuna_v1 import VICUNA_SYSTEM


def _literal(text: str) -> str:
    """``text`` as a single-quoted Jinja string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _content_macro(image_separator: str, front: bool) -> str:
    """Jinja macro ``content(message)``: string content (with literal ``<image>``) or a list of parts.

    ``front``: a string turn's ``<image>`` moves to the front as the template's ``image_placement: front``.
    ``image_separator`` follows every ``<image>``: a space makes a whole-string, non-legacy tokenisation give
    the word-start piece LLaVA's chunk-wise ``tokenizer_image_token`` gives the text after an image.
    """
    image = _literal("<image>" + image_separator)
    if front:
        string = (
            "{%- if '<image>' in message['content'] -%}"
            "{{ " + image + " + '\\n' + (message['content'] | replace('<image>', '') | trim) }}"
            "{%- else -%}{{ message['content'] }}{%- endif -%}"
        )
    else:
        string = "{{ message['content'] | replace('<image>', " + image + ") }}"
    return (
        "{%- macro content(message) -%}"
        "{%- if message['content'] is string -%}" + string +
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{ " + image + " + '\\n' }}"
        "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{%- endmacro -%}"
    )


_SYSTEM = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = content(messages[0]) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}"
)

_MISTRAL_INSTRUCT_BODY = (
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if loop.first and system -%}{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content(message) + ' [/INST]' }}"
    "{%- else -%}{{ '[INST] ' + content(message) + ' [/INST]' }}{%- endif -%}"
    "{%- else -%}{{ ' ' + content(message) + ' ' + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)

_VICUNA_V1_BODY = (
    "{{ (system if system else " + _literal(VICUNA_SYSTEM) + ") + ' ' }}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}{{ 'USER: ' + content(message) }}"
    "{%- else -%}{{ ' ASSISTANT: ' + content(message) + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)

_LLAVA_MED_V1_BODY = (
    "{{ (system if system else " + _literal(LLAVA_MED_SYSTEM) + ") + '\\n\\n' }}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ ('### Human: ' if loop.first else ' Human: ') + content(message) + '\\n###' }}"
    "{%- else -%}{{ ' Assistant: ' + content(message) + '\\n###' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' Assistant:' }}{%- else -%}{{ ' ' }}{%- endif -%}"
)

_BODIES: dict[str, str] = {
    "mistral_instruct": _MISTRAL_INSTRUCT_BODY,
    "vicuna_v1": _VICUNA_V1_BODY,
    "llava_med_v1": _LLAVA_MED_V1_BODY,
}
#: templates whose turns get ``<image>`` moved to the front (their ``image_placement``)
_FRONT = frozenset({"mistral_instruct", "vicuna_v1"})
#: what may follow an ``<image>`` (see :func:`_content_macro`)
IMAGE_SEPARATORS = ("", " ")
#: a conversation covering a system-less first turn with an image, an answer and a follow-up question
_PROBE = (("user", "What is shown here?\n<image>"), ("assistant", "A chest radiograph."), ("user", "Which side?"))
#: the same conversation with list content, the image part first (as chat front ends send it)
_PARTS_PROBE = (
    ("user", [{"type": "image"}, {"type": "text", "text": "What is shown here?"}]),
    ("assistant", [{"type": "text", "text": "A chest radiograph."}]),
    ("user", [{"type": "text", "text": "Which side?"}]),
)
#: what medzoo reads for the list-content probe (an image part is ``<image>\n``)
_PARTS_AS_TEXT = (("user", "<image>\nWhat is shown here?"), *_PROBE[1:])

#: runs before the tokenizer's own template: list content becomes a string (``<image>\\n`` per image part) and,
#: for ``front`` placement, a user turn's single ``<image>`` moves to the front as medzoo places it
_OWN_PRELUDE = (
    "{%- set medzoo = namespace(turns=[]) -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set joined = namespace(text='') -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{%- set joined.text = joined.text + '<image>\\n' -%}"
    "{%- elif part['type'] == 'text' -%}{%- set joined.text = joined.text + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = joined.text -%}{%- endif -%}"
    "{%- if FRONT and message['role'] == 'user' and text.count('<image>') == 1 -%}"
    "{%- set text = '<image>\\n' + (text | replace('<image>', '') | trim) -%}{%- endif -%}"
    "{%- set medzoo.turns = medzoo.turns + [dict(message, content=text | replace('<image>', IMAGE))] -%}"
    "{%- endfor -%}"
    "{%- set messages = medzoo.turns -%}"
)


def chat_template_for(template_name: str, image_separator: str = IMAGE_SEPARATORS[0]) -> str | None:
    """The Jinja equivalent of a medzoo template, or ``None`` when there is none."""
    body = _BODIES.get(template_name)
    if body is None:
        return None
    return _content_macro(image_separator, template_name in _FRONT) + _SYSTEM + body


def own_chat_template(jinja: str, image_placement: str, drop_bos: bool = False,
                      image_separator: str = IMAGE_SEPARATORS[0]) -> str:
    """The tokenizer's own template ``jinja`` behind the prelude that gives it medzoo's string contents;
    ``drop_bos``: the tokenizer prepends BOS itself, so a BOS the template renders first is dropped (as medzoo
    does), or consumers would see two; ``image_separator`` follows every ``<image>`` (see :func:`_content_macro`)."""
    if drop_bos:
        jinja = ("{%- set medzoo_text -%}" + jinja + "{% endset %}"
                 "{{ medzoo_text[bos_token | length:] if medzoo_text.startswith(bos_token) else medzoo_text }}")
    prelude = _OWN_PRELUDE.replace("FRONT", "true" if image_placement == "front" else "false")
    return prelude.replace("IMAGE", _literal("<image>" + image_separator)) + jinja


def prepends_bos(tokenizer) -> bool:
    """Whether encoding with special tokens starts with the tokenizer's BOS."""
    bos_id = tokenizer.bos_token_id
    return bool(tokenizer.bos_token) and bos_id is not None and tokenizer("x").input_ids[:1] == [bos_id]


def medzoo_ids(template_name: str, tokenizer, messages) -> list[int]:
    """medzoo's ids for ``messages`` (``(role, text)`` pairs) with the generation prompt, images unexpanded."""
    from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message, place_images
    from medzoo.core.model.processor import tokenize_around_images
    from medzoo.core.plugin_system.template_lookup import template_for

    template = template_for(template_name, tokenizer)
    placed = place_images([Message(role, text) for role, text in messages], template.image_placement)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    return tokenize_around_images(tokenizer, template.prompt(placed, tokenizer.eos_token or ""), image_id)[0]


def gives_medzoo_ids(jinja: str, template_name: str, tokenizer) -> bool:
    """Whether ``jinja``, rendered and tokenised with special tokens (as llava-hf consumers do), gives medzoo's
    ids for the probe conversation with string content and with list content."""
    for probe, as_text in ((_PROBE, _PROBE), (_PARTS_PROBE, _PARTS_AS_TEXT)):
        messages: list[dict[str, Any]] = [{"role": role, "content": content} for role, content in probe]
        text = tokenizer.apply_chat_template(messages, chat_template=jinja, add_generation_prompt=True,
                                             tokenize=False)
        if tokenizer(text).input_ids != medzoo_ids(template_name, tokenizer, as_text):
            return False
    return True


def calibrated_chat_template(template_name: str, tokenizer) -> str | None:
    """The chat template whose text, tokenised with special tokens, gives medzoo's ids for ``tokenizer``
    (``None``: no Jinja equivalent, or none reproduces the ids). ``chat_template``: the tokenizer's own."""
    if template_name == "chat_template":
        own = getattr(tokenizer, "chat_template", None)
        if not isinstance(own, str) or not own:
            return None
        from medzoo.core.plugin_system.template_lookup import get_template

        placement = get_template(template_name).image_placement
        drop_bos = prepends_bos(tokenizer)
        candidates = [own_chat_template(own, placement, drop_bos, separator) for separator in IMAGE_SEPARATORS]
    elif template_name in _BODIES:
        candidates = [chat_template_for(template_name, separator) for separator in IMAGE_SEPARATORS]  # type: ignore[misc]
    else:
        return None
    return next((jinja for jinja in candidates if gives_medzoo_ids(jinja, template_name, tokenizer)), None)
