"""One multiple-choice question as a parser sees it: its options and its reference answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MultipleChoice:
    """``options``: option letter -> the option as the benchmark file writes it (PMC-VQA's ``A:CT scan`` keeps its
    ``A:``), in the file's order; ``answer``: the reference exactly as the file gives it (a letter, or for some
    files the option's text); ``answer_letter``: the reference's letter."""

    options: dict[str, str]
    answer: str
    answer_letter: str

    @classmethod
    def of(cls, options: dict[str, str], answer: str) -> MultipleChoice:
        """The question with ``answer_letter`` worked out (None of the options: ValueError naming the answer)."""
        return cls(dict(options), answer, letter_of_answer(options, answer))


def letter_of_answer(options: dict[str, str], answer: str) -> str:
    """The option letter a reference names: the letter itself (any case, surrounding blanks ignored), or the one
    option whose text equals it (with or without a ``B:`` / ``B.`` prefix); else ValueError."""
    text = answer.strip()
    if text.upper() in options and len(text) == 1:
        return text.upper()
    matches = [letter for letter, option in options.items() if text in (option.strip(), strip_letter(letter, option))]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"answer {answer!r} is not one of the options {', '.join(options)}")


def strip_letter(letter: str, option: str) -> str:
    """An option's text without a leading ``B:`` / ``B.`` / ``(B)`` label for its own letter."""
    text = option.strip()
    for prefix in (f"{letter}:", f"{letter}.", f"({letter})", f"{letter})"):
        if text.startswith(prefix):
            return text[len(prefix):].strip()
    return text
