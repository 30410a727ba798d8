"""Jinja chat templates (for transformers' ``apply_chat_template`` and vLLM) equal to medzoo's templates.

Message content may be a string (medzoo style, with the literal ``<image>``) or a list of parts
(``{"type": "image"}``, ``{"type": "text", "text": ...}``); an image part renders as ``<image>\\n``.
The rendered text starts with the BOS token, as llava-hf templates do (tokenise it without adding special tokens).
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

MISTRAL_INSTRUCT = (
    _CONTENT + _SYSTEM + "{{ bos_token }}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if loop.first and system -%}{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content(message) + ' [/INST]' }}"
    "{%- else -%}{{ '[INST] ' + content(message) + ' [/INST]' }}{%- endif -%}"
    "{%- else -%}{{ ' ' + content(message) + ' ' + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
)

VICUNA_V1 = (
    _CONTENT + _SYSTEM + "{{ bos_token }}"
    "{{ (system if system else " + _literal(VICUNA_SYSTEM) + ") + ' ' }}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}{{ 'USER: ' + content(message) }}"
    "{%- else -%}{{ ' ASSISTANT: ' + content(message) + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)

LLAVA_MED_V1 = (
    _CONTENT + _SYSTEM + "{{ bos_token }}"
    "{{ (system if system else " + _literal(LLAVA_MED_SYSTEM) + ") + '\\n\\n' }}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}{{ ('### Human: ' if loop.first else ' Human: ') + content(message) }}"
    "{%- else -%}{{ '\\n### Assistant: ' + content(message) + '\\n###' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '\\n### Assistant:' }}{%- endif -%}"
)

CHAT_TEMPLATES: dict[str, str] = {
    "mistral_instruct": MISTRAL_INSTRUCT,
    "vicuna_v1": VICUNA_V1,
    "llava_med_v1": LLAVA_MED_V1,
}


def chat_template_for(template_name: str) -> str | None:
    """The Jinja equivalent of a medzoo template, or ``None`` when there is none."""
    return CHAT_TEMPLATES.get(template_name)
