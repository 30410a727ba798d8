"""``phi3``: Phi-3 / Phi-3.5 Instruct's format, for a tokenizer that ships no chat template.

``<|system|>\\n...<|end|>\\n`` (when a system message is given), ``<|user|>\\nQ<|end|>\\n``,
``<|assistant|>\\nA<|end|>\\n``; generation after ``<|assistant|>\\n``. The reply and its ``<|end|>`` are
trained; like the official template a finished conversation ends with the EOS token (not trained: generation
stops at ``<|end|>``).
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

END = "<|end|>"


class Phi3Template(ConversationTemplate):
    name = "phi3"
    stop_strings = (END,)
    image_placement = "front"

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        if system:
            builder.add(f"<|system|>\n{system}{END}\n")
        for pair in pairs:
            builder.add(f"<|user|>\n{pair.question}{END}\n")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add("<|assistant|>\n")
            if pair.answer is not None:
                builder.add(f"{pair.answer}{END}", target=True)
                builder.add("\n")
        if not add_generation_prompt:
            builder.add(eos_token)
        return builder.build()
