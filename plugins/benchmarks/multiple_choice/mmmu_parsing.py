"""MMMU's answer parsing as MedEvalKit runs it, re-implemented to agree with it answer for answer.

Source: alibaba-damo-academy/MedEvalKit at commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0:
``utils/MMMU/eval_val.py`` ``run_model`` (the ``<answer>`` span, then the last ``\\boxed{}``, taken from the
response), ``utils/MMMU/eval_utils.py`` ``parse_multi_choice_response``, ``parse_open_response``,
``normalize_str``, ``extract_numbers``, ``eval_multi_choice`` and ``eval_open``; ``utils/MMMU/data_utils.py``
``construct_prompt`` (the prompt).

Kept as the harness has them:

- a multiple-choice answer naming no option is a random option; the harness draws it from Python's unseeded
  global generator, medzoo from one seeded with the question id (so a rerun scores alike) and counts the draws;
- ``eval_val.py`` passes an open question's raw response to ``eval_open`` as its list of predictions, so the
  characters of the response are compared with the reference: an open question is right only when its reference
  normalises to the empty string. The ``mmmu`` protocol instead parses the response with ``parse_open_response``
  (shipped in the same file, not called by ``eval_val.py``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from medzoo.plugins.benchmarks.multiple_choice.medevalkit import between_tags, last_boxed

MEDEVALKIT_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."
#: ``construct_prompt``'s template ends with a blank line and eight spaces (its source indentation)
TEMPLATE_TAIL = "\n\n        "


def mmmu_prompt(question: str, options: Sequence[str]) -> str:
    """The text ``construct_prompt`` builds: ``(A) option`` lines for a multiple-choice question (non-reasoning
    mode), the single-word instruction for an open one."""
    if options:
        example = "".join(f"({chr(ord('A') + index)}) {option}\n" for index, option in enumerate(options))
        return f"\n{question}\n\n{example}{TEMPLATE_TAIL}{MEDEVALKIT_INSTRUCTION}"
    return f"\n{question}{TEMPLATE_TAIL}{OPEN_INSTRUCTION}"


def run_model_response(response: str) -> str:
    """What ``run_model`` keeps of a response: the ``<answer>`` spans, then the last ``\\boxed{}`` content."""
    if "<answer>" in response:
        response = between_tags(response, "answer")
    boxed = last_boxed(response)
    return boxed if boxed != "None" else response


def parse_choice(response: str, options: Sequence[str], seed: str) -> tuple[str, bool]:
    """(the letter ``parse_multi_choice_response`` picks, whether it was a random draw)."""
    letters = [chr(ord("A") + index) for index in range(len(options))]
    index2ans = dict(zip(letters, options, strict=True))
    response = response or ""
    if "<answer>" in response:
        response = between_tags(response, "answer")
    elif "\\boxed" in response:
        response = last_boxed(response)
    response = response.strip()
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "
    index_ans, with_brackets = True, False
    candidates = [letter for letter in letters if f"({letter})" in response]
    with_brackets = bool(candidates)
    if not candidates:
        candidates = [letter for letter in letters if f" {letter} " in response]
    if not candidates and len(response.split()) > 5:
        candidates = [letter for letter, answer in index2ans.items() if answer.lower() in response.lower()]
        index_ans = not candidates
    if not candidates:
        return random.Random(seed).choice(letters), True
    if len(candidates) == 1:
        return candidates[0], False
    if index_ans:
        pattern = "({})" if with_brackets else " {} "
        starts = [response.rfind(pattern.format(letter)) for letter in candidates]
    else:
        starts = [response.lower().rfind(index2ans[letter].lower()) for letter in candidates]
    return candidates[max(range(len(starts)), key=lambda i: (starts[i], -i))], False


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize(text: str) -> list[str | float]:
    """``normalize_str``: a number rounded to two places, else the lower-cased text (a single character padded
    with a blank on either side, to avoid trivial matches)."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def extract_numbers(text: str) -> list[str]:
    """``extract_numbers``: numbers with thousands commas, in scientific notation, then plain ones."""
    commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", text)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", text)
    simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", text)
    return commas + scientific + simple


def _key_responses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    pieces = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    keys = []
    for index, piece in enumerate(pieces):
        if index == len(pieces) - 1:
            indicators.append("=")
        shortest = None
        for indicator in indicators:
            if indicator in piece:
                tail = piece.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in [":", ",", ".", "!", "?", ";", ":", "'"]:
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[str | float]:
    """``parse_open_response``: the key phrases of the response and the numbers in them, normalised."""
    keys = _key_responses(response)
    predictions = list(keys)
    for key in keys:
        predictions.extend(extract_numbers(key))
    normalised: list[str | float] = []
    for prediction in predictions:
        normalised.extend(normalize(prediction))
    return list(dict.fromkeys(normalised))


def open_correct(answer: str, predictions: Iterable[str | float]) -> bool:
    """``eval_open``: a string prediction is right when it contains a normalised reference string, a number when
    it equals a normalised reference number."""
    references = normalize(answer)
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(reference, str) and reference in prediction for reference in references):
                return True
        elif prediction in references:
            return True
    return False
