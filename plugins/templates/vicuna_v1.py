"""``vicuna_v1``: Vicuna v1.1+ format (LLaVA's ``conv_vicuna_v1``).

``<system> USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>``; a system message replaces the default line.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


class VicunaV1Template(ConversationTemplate):
    name = "vicuna_v1"
    stop_strings = ("</s>",)
    image_placement = "front"  # LLaVA-1.5 preprocess_multimodal / LLaVA-Med v1.5 model_vqa.py

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        builder.add(f"{system or VICUNA_SYSTEM} ")
        for pair in pairs:
            builder.add(f"USER: {pair.question}")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add(" ASSISTANT:")
            if pair.answer is not None:
                builder.add(" ")
                builder.add(f"{pair.answer}{eos_token}", target=True)
        return builder.build()
