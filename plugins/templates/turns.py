"""Checking a conversation's turn order and pairing each question with its answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medzoo import DataError, Message, split_system


@dataclass(frozen=True)
class Exchange:
    """One user turn and the assistant reply to it (``None``: the reply is still to be generated)."""

    question: str
    answer: str | None


def exchanges(
    messages: Sequence[Message], add_generation_prompt: bool, template: str
) -> tuple[str | None, list[Exchange]]:
    """The leading system text and the user/assistant exchanges; turns must alternate, starting with the user."""
    system, turns = split_system(messages)
    if not turns:
        raise DataError(f"template {template!r}: the conversation has no user turn")
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.role != expected:
            raise DataError(
                f"template {template!r}: turn {index + 1} has role {message.role!r}; expected {expected!r} "
                "(turns alternate user/assistant after an optional leading system message)"
            )
    if add_generation_prompt and turns[-1].role != "user":
        raise DataError(f"template {template!r}: a generation prompt needs the conversation to end with a user turn")
    pairs = [
        Exchange(turns[index].content, turns[index + 1].content if index + 1 < len(turns) else None)
        for index in range(0, len(turns), 2)
    ]
    return system, pairs
