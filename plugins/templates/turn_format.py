"""A template written once, as the strings around its turns: rendered here with the trained spans, and exported
as the equivalent Jinja chat template (the llava-hf export's chat templates) from the same strings.

``{system}``, ``{question}``, ``{answer}`` and ``{eos}`` are the only placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from medzoo import ConversationTemplate, Message, RenderedConversation, TextBuilder
from medzoo.plugins.templates.turns import exchanges

PLACEHOLDER = re.compile(r"\{(system|question|answer|eos)\}")


@dataclass(frozen=True)
class TurnFormat:
    """What a template writes around a system text and alternating user/assistant turns.

    The text is ``opening``, then per exchange the user turn (``first_user_with_system`` for the first when there is
    a system text and the format puts it there, else ``first_user`` for the first, ``user`` after), then ``cue``,
    ``reply_lead`` and the trained ``reply``. A generation prompt is the ``cue``; a last user turn left unanswered
    without one is followed by ``unanswered_end``; a finished conversation's last reply is extended by the trained
    ``closing``."""

    #: written as ``{system}`` when the conversation has no system message (``None``: no system text)
    default_system: str | None
    user: str
    reply: str
    opening: str = ""
    first_user: str | None = None
    first_user_with_system: str | None = None
    cue: str = ""
    reply_lead: str = " "
    unanswered_end: str = ""
    closing: str = ""

    def user_turn(self, index: int, question: str, system: str) -> str:
        if index == 0 and system and self.first_user_with_system is not None:
            return fill(self.first_user_with_system, system=system, question=question)
        pattern = self.first_user if index == 0 and self.first_user is not None else self.user
        return fill(pattern, question=question)

    def render(self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool,
               template: str) -> RenderedConversation:
        given, pairs = exchanges(messages, add_generation_prompt, template)
        system = given or self.default_system or ""
        builder = TextBuilder()
        builder.add(fill(self.opening, system=system))
        for index, pair in enumerate(pairs):
            builder.add(self.user_turn(index, pair.question, system))
            if pair.answer is None and not add_generation_prompt:
                builder.add(self.unanswered_end)
                break
            builder.add(self.cue)
            if pair.answer is not None:
                builder.add(self.reply_lead)
                builder.add(fill(self.reply, answer=pair.answer, eos=eos_token), target=True)
        if pairs[-1].answer is not None and not add_generation_prompt:
            builder.add(self.closing, target=True, extend=True)
        return builder.build()


def fill(pattern: str, **values: str) -> str:
    """``pattern`` with its placeholders replaced (a value's own braces are left alone)."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], pattern)


class TurnFormatTemplate(ConversationTemplate):
    """A template given entirely by its :class:`TurnFormat`."""

    turn_format: ClassVar[TurnFormat]

    def render(
        self, messages: Sequence[Message], eos_token: str, add_generation_prompt: bool = False
    ) -> RenderedConversation:
        return self.turn_format.render(messages, eos_token, add_generation_prompt, self.name)
