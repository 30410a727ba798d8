"""``llava_med_v1``: the LLaVA-Med v1.0 training format (LLaVA v0 lineage), exactly as the official code renders it.

Follows microsoft/LLaVA-Med v1.0.0 ``llava/train/train.py`` ``preprocess`` / ``_add_speaker_and_signal`` with
``default_conversation = conv_v1_2`` (``llava/conversation.py``): the system line, a blank line, then every turn
as ``### Human: Q\\n`` or ``### Assistant: A\\n``, and a closing ``### ``::

    <system>\\n\\n### Human: Q1\\n### Assistant: A1\\n### Human: Q2\\n### Assistant: A2\\n###<space>

Each reply is trained together with the ``\\n###`` that ends it (the last one with the closing space) (generation stops at ``###``). A system message
replaces the default line. ``<image>`` stays where the data put it (v1.0 ``preprocess_multimodal``). The
official label masking (``_mask_targets``) is available as ``label_masking: official`` (see
:meth:`official_pieces`); medzoo's default labels exactly the replies. Benchmarks evaluate models trained with
this template through ``llava_med_v1_vqa`` (the paper's evaluation prompt), sampled at temperature 0.7.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo import Message
from medzoo.plugins.templates.turn_format import TurnFormat, TurnFormatTemplate
from medzoo.plugins.templates.turns import exchanges

#: ``conv_v1_2.system`` (also ``simple_conv.system``) of LLaVA-Med v1.0.0 ``llava/conversation.py``
LLAVA_MED_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
SEPARATOR = "###"
ROLES = {"user": "Human", "assistant": "Assistant"}


class LlavaMedV1Template(TurnFormatTemplate):
    name = "llava_med_v1"
    stop_strings = (SEPARATOR,)
    image_placement = "keep"
    evaluation_template = "llava_med_v1_vqa"
    evaluation_decoding = {"do_sample": True, "temperature": 0.7}
    # each reply is trained with the "\n###" that ends it; the next question follows as " Human: ..."
    turn_format = TurnFormat(
        default_system=LLAVA_MED_SYSTEM,
        opening="{system}\n\n",
        first_user=f"{SEPARATOR} Human: {{question}}",
        user=" Human: {question}",
        cue=f"\n{SEPARATOR} Assistant:",
        reply=f"{{answer}}\n{SEPARATOR}",
        unanswered_end=f"\n{SEPARATOR} ",
        closing=" ",  # the closing "### " (the official code trains it too)
    )

    def official_pieces(self, messages: Sequence[Message]) -> tuple[str, list[tuple[str, str]]]:
        """The header and the per-turn strings the official ``_mask_targets`` measures (v1.0.0 ``train.py``)."""
        system, pairs = exchanges(messages, False, self.name)
        pieces: list[tuple[str, str]] = []
        for pair in pairs:
            pieces.append(("user", f"{SEPARATOR} {ROLES['user']}: {pair.question}\n"))
            if pair.answer is not None:
                pieces.append(("assistant", f"{SEPARATOR} {ROLES['assistant']}: {pair.answer}\n"))
        return f"{system or LLAVA_MED_SYSTEM}\n\n", pieces
