"""``gemma``: Gemma 2 / Gemma 3 instruct format, for a tokenizer that ships no chat template.

``<start_of_turn>user\\nQ<end_of_turn>\\n<start_of_turn>model\\nA<end_of_turn>\\n`` (the assistant role is
``model``, contents trimmed), generation after ``<start_of_turn>model\\n``; the reply and its
``<end_of_turn>`` are trained. Gemma has no system role: as Gemma 3's template does, a system message is
written at the start of the first user turn followed by a blank line (Gemma 2's template refuses one). The
official templates start with ``<bos>``, which the tokenizer prepends itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

END_OF_TURN = "<end_of_turn>"


class GemmaTemplate(ConversationTemplate):
    name = "gemma"
    stop_strings = (END_OF_TURN,)
    image_placement = "front"

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        for index, pair in enumerate(pairs):
            first = f"{system}\n\n" if index == 0 and system is not None else ""
            builder.add(f"<start_of_turn>user\n{first}{pair.question.strip()}{END_OF_TURN}\n")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add("<start_of_turn>model\n")
            if pair.answer is not None:
                builder.add(f"{pair.answer.strip()}{END_OF_TURN}", target=True)
                builder.add("\n")
        return builder.build()
