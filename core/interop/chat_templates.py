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


_CONTENT = (
    "{%- macro content(message) -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<image>\\n' }}"
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
    "{%- if message['role'] == 'user' -%}{{ ('### Human: ' if loop.first else ' Human: ') + content(message) }}"
    "{%- else -%}{{ '\\n### Assistant: ' + content(message) + '\\n###' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '\\n### Assistant:' }}{%- endif -%}"
)

_BODIES: dict[str, str] = {
    "mistral_instruct": _MISTRAL_INSTRUCT_BODY,
    "vicuna_v1": _VICUNA_V1_BODY,
    "llava_med_v1": _LLAVA_MED_V1_BODY,
}
#: what may follow the BOS token, in order of preference
BOS_PREFIXES = ("{{ bos_token }}", "{{ bos_token + ' ' }}", "")
#: a conversation covering a system-less first turn with an image, an answer and a follow-up question
_PROBE = (("user", "<image>\nWhat is shown here?"), ("assistant", "A chest radiograph."), ("user", "Which side?"))


def chat_template_for(template_name: str, bos_prefix: str = BOS_PREFIXES[0]) -> str | None:
    """The Jinja equivalent of a medzoo template, or ``None`` when there is none."""
    body = _BODIES.get(template_name)
    return None if body is None else _CONTENT + _SYSTEM + bos_prefix + body


def calibrated_chat_template(template_name: str, tokenizer) -> str | None:
    """The chat template whose text, tokenised without special tokens, gives medzoo's ids for ``tokenizer``
    (``None``: no Jinja equivalent, or no BOS prefix reproduces the ids)."""
    from medzoo.core.conversation import Message
    from medzoo.core.templates import get_template

    if template_name not in _BODIES:
        return None
    probe = [Message(role, content) for role, content in _PROBE]  # type: ignore[arg-type]
    expected = tokenizer(get_template(template_name).prompt(probe, tokenizer.eos_token or "")).input_ids
    prefixes = BOS_PREFIXES if tokenizer.bos_token else ("",)
    messages = [{"role": m.role, "content": m.content} for m in probe]
    for prefix in prefixes:
        template = chat_template_for(template_name, prefix)
        text = tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                             tokenize=False)
        if tokenizer(text, add_special_tokens=False).input_ids == expected:
            return template
    return None
