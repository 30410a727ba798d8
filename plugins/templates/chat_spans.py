"""Training spans of a conversation rendered by a Jinja chat template, and the check that it cannot drift.

A Jinja template only gives text. For each assistant turn the conversation up to that turn is rendered with
the generation prompt (``prefix``) and with the reply (``full``); the reply must start exactly where the prefix
ends, the whole conversation must start with the prefix and continue with the reply and its end-of-turn
marker. Anything else (a template that rewrites earlier turns, inserts text before the reply, or ends a turn
with nothing) would train text the model never sees when it generates: a one-line :class:`RecipeError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from medzoo import Message, RecipeError, RenderedConversation

#: renders a conversation (role/content dicts), with or without the generation prompt
Renderer = Callable[[list[dict[str, str]], bool], str]
_WORD = re.compile(r"\S+")


def end_marker(tail: str, control_tokens: Iterable[str]) -> str:
    """The end-of-turn marker at the start of ``tail`` (the text after a reply): a control token, else the first
    word; whitespace before it is kept, whatever follows it is not."""
    lead = len(tail) - len(tail.lstrip())
    body = tail[lead:]
    for token in sorted((token for token in control_tokens if token), key=len, reverse=True):
        if body.startswith(token):
            return tail[: lead + len(token)]
    word = _WORD.match(body)
    return tail[: lead + word.end()] if word else ""


def _rendered_reply(full: str, prefix: str, reply: str) -> str | None:
    """The reply as the template wrote it right after ``prefix`` (verbatim, or trimmed as many templates do)."""
    if not full.startswith(prefix):
        return None
    rest = full[len(prefix):]
    for candidate in dict.fromkeys((reply, reply.strip())):
        if candidate and rest.startswith(candidate):
            return candidate
    return None


def chat_spans(
    render: Renderer,
    messages: Sequence[Message],
    add_generation_prompt: bool,
    control_tokens: Iterable[str],
    what: str,
) -> RenderedConversation:
    """The rendered conversation with each reply plus its end marker as a target span; ``what`` names the
    template and tokenizer in errors."""
    chat = [{"role": message.role, "content": message.content} for message in messages]
    text = render(chat, add_generation_prompt)
    tokens = tuple(control_tokens)
    spans: list[tuple[int, int]] = []
    turn = 0
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        turn += 1
        prefix = render(chat[:index], True)
        full = render(chat[: index + 1], False)
        reply = _rendered_reply(full, prefix, message.content)
        if reply is None:
            raise RecipeError(
                f"{what}: reply {turn} does not start where its generation prompt ends (the template writes "
                "other text before it or rewrites the prompt); training would not match generation"
            )
        end = len(prefix) + len(reply)
        marker = end_marker(full[end:], tokens)
        if not marker:
            raise RecipeError(f"{what}: reply {turn} is followed by no end-of-turn marker; the model could not "
                              "learn to stop")
        if not text.startswith(prefix) or not text.startswith(reply + marker, len(prefix)):
            raise RecipeError(
                f"{what}: reply {turn} reads differently in the whole conversation than after its own generation "
                "prompt (the template rewrites earlier turns); training would not match generation"
            )
        spans.append((len(prefix), end + len(marker)))
    return RenderedConversation(text, spans)
