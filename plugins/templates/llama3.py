"""``llama3``: Meta Llama 3 Instruct's format, for a tokenizer that ships no chat template.

``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>`` per turn, contents trimmed, generation
after ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``; the reply and its ``<|eot_id|>`` are trained.
The official template starts with ``<|begin_of_text|>``, which the tokenizer prepends itself (so it is not in
the text). Llama 3.1+ templates add a dated system header; with such a tokenizer use ``chat_template``.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

EOT = "<|eot_id|>"


def header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


class Llama3Template(ConversationTemplate):
    name = "llama3"
    stop_strings = (EOT,)
    image_placement = "front"

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        if system is not None:
            builder.add(f"{header('system')}{system.strip()}{EOT}")
        for pair in pairs:
            builder.add(f"{header('user')}{pair.question.strip()}{EOT}")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add(header("assistant"))
            if pair.answer is not None:
                builder.add(f"{pair.answer.strip()}{EOT}", target=True)
        return builder.build()
