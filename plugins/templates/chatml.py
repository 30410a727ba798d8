"""ChatML templates for the Qwen families when the tokenizer ships no chat template (base checkpoints).

``chatml``: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per turn, no default system prompt (a system message,
when given, comes first); the reply and its ``<|im_end|>`` are trained, generation starts after
``<|im_start|>assistant\\n``. ``qwen2_5``: the same with Qwen2.5-Instruct's default system prompt (what its
chat template writes when the conversation has none). ``qwen3``: Qwen3 in non-thinking mode: every reply
follows an empty ``<think>\\n\\n</think>\\n\\n`` block, which the generation prompt ends with (Qwen3's own
template with ``enable_thinking=False`` for the latest turn; its template drops the block from earlier turns,
which no single training sequence can match, so medzoo keeps it in every turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.language.chat_formats import QWEN2_5_DEFAULT_SYSTEM
from medzoo.plugins.templates.turns import exchanges

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
EMPTY_THINK = "<think>\n\n</think>\n\n"


class ChatMLTemplate(ConversationTemplate):
    name = "chatml"
    stop_strings = (IM_END,)
    image_placement = "front"
    #: system prompt written when the conversation has none (``None``: no system turn)
    default_system: ClassVar[str | None] = None
    #: text every reply starts after (part of the generation prompt)
    reply_prefix: ClassVar[str] = ""

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        if system is not None or self.default_system is not None:
            builder.add(f"{IM_START}system\n{self.default_system if system is None else system}{IM_END}\n")
        for pair in pairs:
            builder.add(f"{IM_START}user\n{pair.question}{IM_END}\n")
            if pair.answer is None and not add_generation_prompt:
                break
            builder.add(f"{IM_START}assistant\n{self.reply_prefix}")
            if pair.answer is not None:
                builder.add(f"{pair.answer}{IM_END}", target=True)
                builder.add("\n")
        return builder.build()


class Qwen25Template(ChatMLTemplate):
    name = "qwen2_5"
    default_system = QWEN2_5_DEFAULT_SYSTEM


class Qwen3Template(ChatMLTemplate):
    name = "qwen3"
    reply_prefix = EMPTY_THINK
