"""Jinja chat templates (for transformers' ``apply_chat_template`` and vLLM) equal to medzoo's templates.

Message content may be a string (medzoo style, with the literal ``<image>``) or a list of parts
(``{"type": "image"}``, ``{"type": "text", "text": ...}``); an image part renders as ``<image>\\n``.
The rendered text starts with the BOS token, as llava-hf templates do (tokenise it without adding special tokens).
What follows BOS depends on the tokenizer: a Metaspace tokenizer (``prepend_scheme: first``) adds no word-start
marker after a special token, so the template writes ``<s> [INST]`` to get the ids of ``[INST]`` at the start of
a text; a legacy (normaliser-prepending) tokenizer needs ``<s>[INST]``. :func:`calibrated_chat_template` picks
the prefix whose ids equal medzoo's tokenisation.
"""

from __future__ import annotations

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
#: what may follow the BOS token, in order of preference
BOS_PREFIXES = ("{{ bos_token }}", "{{ bos_token + ' ' }}", "")
#: what may follow an ``<image>`` (see :func:`_content_macro`)
IMAGE_SEPARATORS = ("", " ")
#: a conversation covering a system-less first turn with an image, an answer and a follow-up question
_PROBE = (("user", "What is shown here?\n<image>"), ("assistant", "A chest radiograph."), ("user", "Which side?"))


def chat_template_for(
    template_name: str, bos_prefix: str = BOS_PREFIXES[0], image_separator: str = IMAGE_SEPARATORS[0]
) -> str | None:
    """The Jinja equivalent of a medzoo template, or ``None`` when there is none."""
    body = _BODIES.get(template_name)
    if body is None:
        return None
    return _content_macro(image_separator, template_name in _FRONT) + _SYSTEM + bos_prefix + body


def calibrated_chat_template(template_name: str, tokenizer) -> str | None:
    """The chat template whose text, tokenised without special tokens, gives medzoo's ids for ``tokenizer``
    (``None``: no Jinja equivalent, or no BOS prefix reproduces the ids)."""
    from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER, Message, place_images
    from medzoo.core.interfaces.templates import get_template
    from medzoo.core.model.processor import tokenize_around_images

    if template_name not in _BODIES:
        return None
    probe = [Message(role, content) for role, content in _PROBE]  # type: ignore[arg-type]
    template = get_template(template_name)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    placed = place_images(probe, template.image_placement)
    expected, _ = tokenize_around_images(tokenizer, template.prompt(placed, tokenizer.eos_token or ""), image_id)
    prefixes = BOS_PREFIXES if tokenizer.bos_token else ("",)
    messages = [{"role": m.role, "content": m.content} for m in probe]
    for prefix in prefixes:
        for separator in IMAGE_SEPARATORS:
            jinja = chat_template_for(template_name, prefix, separator)
            text = tokenizer.apply_chat_template(messages, chat_template=jinja, add_generation_prompt=True,
                                                 tokenize=False)
            if tokenizer(text, add_special_tokens=False).input_ids == expected:
                return jinja
    return None
