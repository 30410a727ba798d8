"""``llava_med_v1_vqa``: the prompt behind the LLaVA-Med paper's VQA numbers (conv mode ``simple``).

Follows microsoft/LLaVA-Med v1.0.0 ``llava/eval/model_vqa_med.py`` ``eval_model`` with
``conv_templates["simple"]`` (``llava/conversation.py``, ``SeparatorStyle.SINGLE``): the system line, ``###``, one
example exchange, then the question *followed by* the image markup, and ``###`` with no ``Assistant:`` cue::

    <system>###Human: Hi!###Assistant: Hi there!  How can I help you today?\\n###Human: Q\\n<image>###

The answer is what the model writes next, cut at the first ``###`` and stripped (so it may start with
``Assistant:`` as in the official answer files). The official script samples at temperature 0.7 with
``max_new_tokens=1024``. For training (not something the official code did) each reply is rendered as the
next ``Assistant: A###`` and trained whole, so the generation prompt is the training text up to the reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.llava_med_v1 import LLAVA_MED_SYSTEM, SEPARATOR
from medzoo.plugins.templates.turns import exchanges

EXAMPLE_EXCHANGE = f"Human: Hi!{SEPARATOR}Assistant: Hi there!  How can I help you today?\n{SEPARATOR}"


class LlavaMedV1VqaTemplate(ConversationTemplate):
    name = "llava_med_v1_vqa"
    stop_strings = (SEPARATOR,)
    image_placement = "end"
    evaluation_decoding = {"do_sample": True, "temperature": 0.7}

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        system, pairs = exchanges(messages, add_generation_prompt, self.name)
        builder = TextBuilder()
        builder.add(f"{system or LLAVA_MED_SYSTEM}{SEPARATOR}{EXAMPLE_EXCHANGE}")
        for pair in pairs:
            builder.add(f"Human: {pair.question}{SEPARATOR}")
            if pair.answer is not None:
                builder.add(f"Assistant: {pair.answer}{SEPARATOR}", target=True)
        return builder.build()
