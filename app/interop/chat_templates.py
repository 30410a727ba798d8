"""Jinja chat templates (for transformers' ``apply_chat_template``, lmms-eval, VLMEvalKit and vLLM) equal to
medzoo's templates: each exported template's Jinja is derived from the TurnFormat its Python rendering uses
(``medzoo.plugins.templates.turn_format``), so the two are written once.

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

from medzoo.plugins.templates.llava_med_v1 import LlavaMedV1Template
from medzoo.plugins.templates.mistral_instruct import MistralInstructTemplate
from medzoo.plugins.templates.turn_format import PLACEHOLDER, TurnFormat, TurnFormatTemplate
from medzoo.plugins.templates.vicuna_v1 import VicunaV1Template


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

#: the templates exported as Jinja: each one's body is derived from the TurnFormat its Python rendering uses
EXPORTED: dict[str, type[TurnFormatTemplate]] = {
    template.name: template for template in (MistralInstructTemplate, VicunaV1Template, LlavaMedV1Template)
}


def _expression(pattern: str, **expressions: str) -> str:
    """A Jinja expression writing ``pattern`` (a TurnFormat string), each placeholder given as an expression."""
    parts, position = [], 0
    for match in PLACEHOLDER.finditer(pattern):
        if match.start() > position:
            parts.append(_literal(pattern[position:match.start()]))
        parts.append(expressions[match.group(1)])
        position = match.end()
    if position < len(pattern):
        parts.append(_literal(pattern[position:]))
    return " + ".join(parts)


def _write(pattern: str, **expressions: str) -> str:
    return "{{ " + _expression(pattern, **expressions) + " }}" if pattern else ""


def _branches(branches: list[tuple[str, str]], otherwise: str = "") -> str:
    """``{% if %}``/``{% elif %}``/``{% else %}`` over (condition, output) pairs; empty outputs left out."""
    kept = [(condition, output) for condition, output in branches if output]
    if not kept:
        return otherwise
    jinja = "".join(("{%- if " if index == 0 else "{%- elif ") + condition + " -%}" + output
                    for index, (condition, output) in enumerate(kept))
    return jinja + ("{%- else -%}" + otherwise if otherwise else "") + "{%- endif -%}"


def _body(turns: TurnFormat) -> str:
    """The Jinja that writes what ``turns`` renders (after :data:`_SYSTEM` has set ``system`` and ``turns``)."""
    question, answer = {"question": "content(message)"}, {"answer": "content(message)", "eos": "eos_token"}
    default = ""
    if turns.default_system is not None:
        default = "{%- if not system -%}{%- set system = " + _literal(turns.default_system) + " -%}{%- endif -%}"
    first = turns.first_user if turns.first_user is not None else turns.user
    user = _branches([
        ("loop.first and system", _write(turns.first_user_with_system or "", system="system", **question)),
        ("loop.first", _write(first, **question) if first != turns.user else ""),
    ], otherwise=_write(turns.user, **question))
    turn = _branches([("message['role'] == 'user'", user)],
                     otherwise=_write(turns.cue + turns.reply_lead + turns.reply, **answer))
    ending = _branches([
        ("add_generation_prompt", _write(turns.cue)),
        ("turns and turns[-1]['role'] == 'user'", _write(turns.unanswered_end)),
        ("turns", _write(turns.closing)),
    ])
    return (default + _write(turns.opening, system="system")
            + "{%- for message in turns -%}" + turn + "{%- endfor -%}" + ending)


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
    template = EXPORTED.get(template_name)
    if template is None:
        return None
    front = template.image_placement == "front"
    return _content_macro(image_separator, front) + _SYSTEM + _body(template.turn_format)


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
    elif template_name in EXPORTED:
        candidates = [chat_template_for(template_name, separator) for separator in IMAGE_SEPARATORS]  # type: ignore[misc]
    else:
        return None
    return next((jinja for jinja in candidates if gives_medzoo_ids(jinja, template_name, tokenizer)), None)
