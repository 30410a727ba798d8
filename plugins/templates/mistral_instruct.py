"""``mistral_instruct``: Mistral-7B-Instruct's format, as LLaVA-Med v1.5 uses it.

``[INST] Q1 [/INST] A1 </s>[INST] Q2 [/INST] A2 </s>`` with an empty system prompt; a system message, when
given, is wrapped in ``<<SYS>>`` markers at the start of the first ``[INST]`` block. BOS comes from the tokenizer.
"""

from __future__ import annotations

from medzoo.plugins.templates.turn_format import TurnFormat, TurnFormatTemplate


class MistralInstructTemplate(TurnFormatTemplate):
    name = "mistral_instruct"
    stop_strings = ("</s>",)
    image_placement = "front"  # LLaVA-1.5 preprocess_multimodal / LLaVA-Med v1.5 model_vqa.py
    turn_format = TurnFormat(
        default_system=None,
        first_user_with_system="[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{question} [/INST]",
        user="[INST] {question} [/INST]",
        reply="{answer} {eos}",
    )
