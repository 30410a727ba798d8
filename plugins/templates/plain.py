"""``plain``: stage-1 figure-caption alignment. Each user turn is reduced to its ``<image>`` placeholder(s)
(the instruction text is not shown to the model) and each reply is trained with a trailing newline:
``<image>caption\\n``."""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import IMAGE_PLACEHOLDER, ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges


class PlainTemplate(ConversationTemplate):
    name = "plain"
    stop_strings = ("\n",)

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        _system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        for pair in pairs:
            builder.add(IMAGE_PLACEHOLDER * pair.question.count(IMAGE_PLACEHOLDER))
            if pair.answer is not None:
                builder.add(f"{pair.answer}\n", target=True)
        return builder.build()
