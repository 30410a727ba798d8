"""``vicuna_v1``: Vicuna v1.1+ format (LLaVA's ``conv_vicuna_v1``).

``<system> USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: A2</s>``; a system message replaces the default line.
"""

from __future__ import annotations

from medzoo.plugins.templates.turn_format import TurnFormat, TurnFormatTemplate

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


class VicunaV1Template(TurnFormatTemplate):
    name = "vicuna_v1"
    stop_strings = ("</s>",)
    image_placement = "front"  # LLaVA-1.5 preprocess_multimodal / LLaVA-Med v1.5 model_vqa.py
    turn_format = TurnFormat(
        default_system=VICUNA_SYSTEM,
        opening="{system} ",
        user="USER: {question}",
        cue=" ASSISTANT:",
        reply="{answer}{eos}",
    )
