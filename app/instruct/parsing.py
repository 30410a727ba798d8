"""Turning a generated reply into conversation turns: split on User/Assistant markers, filter, place ``<image>``."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER

_USER = r"user|human|question|q"
_ASSISTANT = r"assistant|gpt|ai|answer|a"
# a marker opens a line, optionally in markdown bold: "User:", "**Assistant:**", "Q:"
MARKER = re.compile(
    rf"^[ \t]*(?:\*\*|__)?(?P<role>{_USER}|{_ASSISTANT})(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_USER_ROLES = frozenset(_USER.split("|"))

# a turn that betrays its source (the model must speak as if it sees the image, not as if it read about it)
SOURCE_REFERENCE = re.compile(
    r"\bcaptions?\b|\blegends?\b|\bcontext\b|\binline mentions?\b|\bmention(?:s|ed)?\b"
    r"|\b(?:the|this|that) (?:text|paper|article|passage|study|description|report|sentences?)\b"
    r"|\bauthors?\b|\b(?:provided|given) (?:information|text|details|description)\b",
    re.IGNORECASE,
)

REASON_UNPARSEABLE = "no user/assistant turns found"
REASON_EMPTY = "every turn mentioned the caption or context"


@dataclass
class ParsedConversation:
    """Question-answer pairs kept, how many were dropped and why, and the reason if nothing is left."""

    turns: list[tuple[str, str]]
    dropped_turns: dict[str, int] = field(default_factory=dict)
    reason: str | None = None


def split_turns(text: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Question-answer pairs in order; text before the first marker is ignored, dropped pieces are counted."""
    segments: list[tuple[str, str]] = []
    matches = list(MARKER.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        role = "user" if match.group("role").lower() in _USER_ROLES else "assistant"
        content = text[match.end() : end].strip()
        if segments and segments[-1][0] == role:  # two markers of one role in a row: one turn
            segments[-1] = (role, f"{segments[-1][1]}\n{content}".strip())
        else:
            segments.append((role, content))
    dropped: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []
    pending_question: str | None = None
    for role, content in segments:
        if role == "user":
            pending_question = content
        elif pending_question is None:
            dropped["answer without a question"] = dropped.get("answer without a question", 0) + 1
        else:
            if pending_question and content:
                pairs.append((pending_question, content))
            else:
                dropped["empty question or answer"] = dropped.get("empty question or answer", 0) + 1
            pending_question = None
    if pending_question is not None:
        dropped["question without an answer"] = dropped.get("question without an answer", 0) + 1
    return pairs, dropped


def parse_conversation(text: str) -> ParsedConversation:
    """Split a reply and drop pairs that mention the caption or context."""
    pairs, dropped = split_turns(text)
    if not pairs:
        return ParsedConversation([], dropped, REASON_UNPARSEABLE)
    kept = [pair for pair in pairs if not (SOURCE_REFERENCE.search(pair[0]) or SOURCE_REFERENCE.search(pair[1]))]
    if len(kept) < len(pairs):
        dropped["mentions caption or context"] = len(pairs) - len(kept)
    return ParsedConversation(kept, dropped, None if kept else REASON_EMPTY)


def image_first(seed: int, record_id: str) -> bool:
    """Whether ``<image>`` goes before the first question: seeded per record, so independent of order."""
    return random.Random(f"{seed}:{record_id}").random() < 0.5


def to_llava_conversations(turns: list[tuple[str, str]], place_image_first: bool) -> list[dict[str, str]]:
    """LLaVA ``conversations`` entries with ``<image>`` on its own line before or after the first question."""
    entries: list[dict[str, str]] = []
    for index, (question, answer) in enumerate(turns):
        if index == 0:
            question = (
                f"{IMAGE_PLACEHOLDER}\n{question}" if place_image_first else f"{question}\n{IMAGE_PLACEHOLDER}"
            )
        entries.append({"from": "human", "value": question})
        entries.append({"from": "gpt", "value": answer})
    return entries
