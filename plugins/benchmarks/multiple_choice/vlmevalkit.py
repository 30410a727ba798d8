"""VLMEvalKit's exact matching of a multiple-choice answer (its ``exact_matching`` judge: no LLM), re-implemented.

Source: open-compass/VLMEvalKit at commit e8e78f05f3080fe28154f2130321f17951c3be94:
``vlmeval/utils/matching_util.py`` ``can_infer`` / ``can_infer_option`` / ``can_infer_text`` and
``vlmeval/dataset/utils/multiple_choice.py`` ``extract_answer_from_item`` (an answer nothing can be inferred
from becomes ``Z``, which is never right) and ``eval_vanilla`` (right when the inferred letter is the reference).

Kept as the harness has them: a lone option letter counts only among the answer's last four words (``"B is
right because the lesion is round"`` infers nothing from the letter); ``answer is a ...`` reads the letter
``A`` (its pattern ignores case); the option's text counts when exactly one option's text occurs in the answer
and the answer is at most twice as long as all options together; the refusal phrases it lists give ``Z``. The
``VERBOSE`` environment switch of the harness (which also rejects a lone ``A`` in a long answer) is off, its
default.
"""

from __future__ import annotations

import re

REFUSALS = (
    "Sorry, I can't help with images of people yet.", "I can't process this file.",
    "I'm sorry, but without the image provided", "Cannot determine the answer",
)  # fmt: skip
SEPARATORS = ".()[],:;!*#{}"
VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
NO_ANSWER = "Z"


def infer_option(answer: str, options: dict[str, str]) -> str | None:
    """The letter ``can_infer_option`` reads from the answer's words (``Z`` for a refusal), or None."""
    if "Failed to obtain answer via API" in answer:
        return None
    if any(refusal in answer for refusal in REFUSALS):
        return NO_ANSWER
    spaced = answer
    for char in SEPARATORS:
        spaced = spaced.replace(char, " ")
    words = spaced.split()
    named = [letter for letter in options if letter in words]
    if len(named) == 1:
        letter = named[0]
        if words.index(letter) > len(words) - 5:
            return letter
    elif not named and NO_ANSWER in words:
        return NO_ANSWER
    match = VERBOSE_ANSWER.search(answer)
    if match and match.group(1).upper() in options:
        return match.group(1).upper()
    return None


def infer_text(answer: str, options: dict[str, str]) -> str | None:
    """The letter of the one option whose text occurs in a short enough answer (``can_infer_text``), or None."""
    lowered = answer.lower()
    if len(lowered) > 2 * sum(len(str(text)) for text in options.values()):
        return None
    found = [letter for letter, text in options.items() if str(text).lower() in lowered]
    return found[0] if len(found) == 1 else None


def vlmevalkit_choice(answer: str, options: dict[str, str]) -> str:
    """The letter exact matching gives the answer: ``can_infer``, else ``Z``."""
    answer = str(answer)
    return infer_option(answer, options) or infer_text(answer, options) or NO_ANSWER


def vlmevalkit_correct(answer: str, options: dict[str, str], reference_letter: str) -> bool:
    return vlmevalkit_choice(answer, options) == reference_letter
