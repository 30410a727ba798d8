"""``mistral_instruct``: Mistral-7B-Instruct's format, as LLaVA-Med v1.5 uses it.

``[INST] Q1 [/INST] A1 </s>[INST] Q2 [/INST] A2 </s>`` with an empty system prompt; a system message, when
given, is wrapped in ``<<SYS>>`` markers at the start of the first ``[INST]`` block. BOS comes from the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges


class MistralInstructTemplate(ConversationTemplate):
    name = "mistral_instruct"
    stop_strings = ("</s>",)
    image_placement = "front"  # LLaVA-1.5 preprocess_multimodal / LLaVA-Med v1.5 model_vqa.py

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        for index, pair in enumerate(pairs):
            question = pair.question
            if index == 0 and system:
                question = f"<<SYS>>\n{system}\n<</SYS>>\n\n{question}"
            builder.add(f"[INST] {question} [/INST]")
            if pair.answer is not None:
                builder.add(" ")
                builder.add(f"{pair.answer} {eos_token}", target=True)
        return builder.build()
