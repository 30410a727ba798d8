"""``llava_med_v1``: the LLaVA-Med v1.0 format (LLaVA v0 lineage).

``<system>\\n\\n### Human: Q1\\n### Assistant: A1\\n### Human: Q2\\n### Assistant: A2\\n###``. Each reply is
trained together with the ``\\n###`` that ends it (generation stops there); the next turn continues with
`` Human:``. A system message replaces the default line. The EOS token is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo.core.conversation import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

LLAVA_MED_SYSTEM = (
    "You are a biomedical vision-language assistant. You can see the image the user shares and answer "
    "questions about it accurately and concisely."
)
SEPARATOR = "###"


class LlavaMedV1Template(ConversationTemplate):
    name = "llava_med_v1"
    stop_strings = (SEPARATOR,)

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        builder.add(f"{system or LLAVA_MED_SYSTEM}\n\n")
        separator_written = False  # the previous reply's target already ends with "###"
        for pair in pairs:
            builder.add(f"{'' if separator_written else SEPARATOR} Human: {pair.question}")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add(f"\n{SEPARATOR} Assistant:")
            if pair.answer is not None:
                builder.add(" ")
                builder.add(f"{pair.answer}\n{SEPARATOR}", target=True)
                separator_written = True
        return builder.build()
