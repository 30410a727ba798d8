"""MedEvalKit's multiple-choice prompt and answer judge, re-implemented to agree with it answer for answer.

Source: alibaba-damo-academy/MedEvalKit at commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0:
``utils/question_formats.py`` ``get_multiple_choice_prompt`` (the prompt), ``utils/utils.py``
``judge_multi_choice`` / ``parse_response`` / ``extract`` / ``find_most_similar_index`` (the judge) and
mathruler 0.1.0 ``grader.extract_boxed_content`` (the ``\\boxed{}`` reader it imports).

Kept as the harness has them (its published figures depend on them):

- the reference is compared as the benchmark file gives it, lower-cased (PMC-VQA: the letter);
- only the part before the first ``.`` and after the last ``:`` of the parsed answer is compared, unstripped,
  so ``"A: CT"`` leaves ``" ct"``, which matches nothing and falls through to the difflib fallback;
- the fallback picks the option most similar (``difflib.SequenceMatcher.ratio``) to the whole parsed answer,
  the first on ties and option A when nothing is similar at all: an empty answer counts as A;
- any answer that contains the word ``boxed`` is read as its last ``\\boxed{...}``; without one it reads
  ``none``;
- ``答案:`` is recognised with an ASCII colon only (``答案：`` with the full-width colon is not);
- the answer-length check (over 300 characters) changes nothing, as in the harness.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

#: the instruction MedEvalKit appends to a multiple-choice question (non-reasoning mode, English)
MEDEVALKIT_INSTRUCTION = "Answer with the option's letter from the given choices directly."
#: the markers after which ``parse_response`` keeps the text, in its order (each splits at its last occurrence)
ANSWER_MARKERS = (
    "**answer**:", "**answer**", "*answer*:", "**answer:**", "answer is", "answer:", "答案:", "final answer",
    "final answer is",
)  # fmt: skip
BOXED = "\\boxed{"


def medevalkit_prompt(question: str, choices: Sequence[str]) -> str:
    """The text ``get_multiple_choice_prompt`` builds (it starts with a newline; ``Options:`` ends with a blank)."""
    options = "\n".join(str(choice) for choice in choices)
    return f"\nQuestion: {question}\nOptions: \n{options}\n{MEDEVALKIT_INSTRUCTION}"


def last_boxed(text: str) -> str:
    """The content of the last ``\\boxed{...}`` (balanced braces, stripped), or ``"None"`` when there is none."""
    start = text.rfind(BOXED)
    if start == -1:
        return "None"
    content = text[start + len(BOXED):]
    depth = 0
    for position, char in enumerate(content):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == -1:
            return content[:position].strip()
    return "None"


def between_tags(text: str, tag: str) -> str:
    """Every ``<tag>...</tag>`` span joined by blanks, or the whole text when there is none (``extract``)."""
    if not text:
        return ""
    start_tag, end_tag = f"<{tag}>", f"</{tag}>"
    pieces = []
    start = text.find(start_tag)
    while start != -1:
        end = text.find(end_tag, start + len(start_tag))
        if end == -1:
            break
        pieces.append(text[start + len(start_tag):end] + " ")
        start = text.find(start_tag, end + len(end_tag))
    found = "".join(pieces).strip()
    return found or text


def answer_span(response: str) -> str:
    """The part of an answer MedEvalKit reads (``parse_response``): lower-cased, the last ``\\boxed{}`` or the
    ``<answer>`` spans, then what follows each answer marker."""
    text = response.lower()
    if "boxed" in text:
        text = last_boxed(text)
    elif "<answer>" in text:
        text = between_tags(text, "answer")
    for marker in ANSWER_MARKERS:
        if marker in text:
            text = text.split(marker)[-1]
    return text


def most_similar(options: Sequence[str], text: str) -> int:
    """Index of the option most similar to ``text`` (first on ties; 0 when none is similar at all)."""
    best, best_ratio = 0, 0.0
    for index, option in enumerate(options):
        ratio = difflib.SequenceMatcher(None, option, text).ratio()
        if ratio > best_ratio:
            best, best_ratio = index, ratio
    return best


def medevalkit_correct(response: str, choices: Sequence[str], answer: str) -> bool:
    """Whether MedEvalKit's ``judge_multi_choice`` counts ``response`` right for ``choices`` (as its loader
    builds them) and ``answer`` (as the file gives it)."""
    letters = [chr(ord("a") + index) for index in range(len(choices))]
    text = response.lower()
    blocks = text.split("\n\n")
    if blocks[0] in letters:
        text = blocks[0]
    elif blocks[-1].split(".")[0] in letters:
        text = blocks[-1].split(".")[0]
    text = answer_span(text).strip().lower().replace("\n", "")
    head = text.split(".")[0].split(":")[-1]
    options = [choice.lower() for choice in choices]
    reference = answer.strip().lower()
    if head == reference:
        return True
    if head in letters:
        return options[letters.index(head)] == reference
    if head in options:
        return reference in letters and head == options[letters.index(reference)]
    index = most_similar(options, text)
    return letters[index] == reference or options[index] == reference
