"""Answer-parsing protocols for multiple-choice questions: which answers count as right.

``medevalkit``: MedEvalKit's ``judge_multi_choice`` (``medevalkit.py``); ``vlmevalkit``: VLMEvalKit's exact
matching (``vlmevalkit.py``); ``strict``: medzoo's own, only an answer that is one unambiguous option letter
counts. A benchmark names its default (the harness its published figures come from); ``--option protocol=NAME``
picks another, and ``metrics.json`` records the one used (``answer_protocol``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from medzoo import DataError
from medzoo.plugins.benchmarks.multiple_choice.medevalkit import medevalkit_correct
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.vlmevalkit import vlmevalkit_correct

#: a strict answer: one letter, optionally in parentheses, optionally followed by a period
STRICT_ANSWER = re.compile(r"\(?([A-Za-z])\)?\.?")


def strict_letter(response: str, question: MultipleChoice) -> str | None:
    """The option letter a strict answer is (``B``, ``b``, ``(B)``, ``B.``; blanks and ``*`` around it
    ignored), or None for anything else, two letters and option text included."""
    match = STRICT_ANSWER.fullmatch(response.strip().strip("*").strip())
    letter = match.group(1).upper() if match else None
    return letter if letter in question.options else None


def strict_correct(response: str, question: MultipleChoice) -> bool:
    return strict_letter(response, question) == question.answer_letter


def medevalkit_judge(response: str, question: MultipleChoice) -> bool:
    return medevalkit_correct(response, list(question.options.values()), question.answer)


def vlmevalkit_judge(response: str, question: MultipleChoice) -> bool:
    return vlmevalkit_correct(response, question.options, question.answer_letter)


@dataclass(frozen=True)
class AnswerProtocol:
    """A way of judging answers: ``judge(response, question)`` says whether it counts as right."""

    name: str
    description: str
    judge: Callable[[str, MultipleChoice], bool]


ANSWER_PROTOCOLS: dict[str, AnswerProtocol] = {
    protocol.name: protocol
    for protocol in (
        AnswerProtocol("medevalkit", "MedEvalKit's judge_multi_choice: \\boxed{} / <answer> / 'answer:' "
                       "extraction, the letter or the option text, difflib fallback to the most similar option",
                       medevalkit_judge),
        AnswerProtocol("vlmevalkit", "VLMEvalKit's exact matching (can_infer): a letter among the last words "
                       "or one option's text, else no answer", vlmevalkit_judge),
        AnswerProtocol("strict", "medzoo's strict reading: the answer must be one option letter and nothing "
                       "else", strict_correct),
    )
}


def answer_protocol(name: str, benchmark: str) -> AnswerProtocol:
    """The protocol called ``name``; an unknown one is a DataError naming the benchmark and the choices."""
    if name not in ANSWER_PROTOCOLS:
        raise DataError(
            f"benchmark {benchmark}: option protocol={name!r}; expected one of {', '.join(ANSWER_PROTOCOLS)}"
        )
    return ANSWER_PROTOCOLS[name]
