"""The multiple-choice answer parsers agree with the harnesses that publish the figures.

Expected values were read off the harness code and confirmed by running the harness functions themselves
(outside this repository) on the same answers:

- MedEvalKit: alibaba-damo-academy/MedEvalKit, commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0,
  ``utils/utils.py`` ``judge_multi_choice`` / ``parse_response`` (with mathruler 0.1.0
  ``extract_boxed_content``); PMC-VQA's choices as ``utils/PMC_VQA/PMC_VQA.py`` passes them (the csv's
  ``A:...`` strings) and its reference (the letter);
- VLMEvalKit: open-compass/VLMEvalKit, commit e8e78f05f3080fe28154f2130321f17951c3be94,
  ``vlmeval/utils/matching_util.py`` ``can_infer`` and ``vlmeval/dataset/utils/multiple_choice.py``
  ``extract_answer_from_item`` (nothing inferred: ``Z``).
"""

from __future__ import annotations

import pytest

from medzoo.core.errors import DataError
from medzoo.plugins.benchmarks.multiple_choice.medevalkit import medevalkit_correct, medevalkit_prompt
from medzoo.plugins.benchmarks.multiple_choice.parsers import ANSWER_PROTOCOLS, answer_protocol, strict_letter
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.vlmevalkit import vlmevalkit_choice

PMC_CHOICES = [
    "A:Diffuse uptake pattern", "B:Focal uptake pattern", "C:No uptake pattern",
    "D:Cannot determine from the information given",
]  # fmt: skip
ORGANS = {"A": "Lung", "B": "Liver", "C": "Heart", "D": "Kidney"}


def medevalkit_letters(response: str) -> list[str]:
    """The references (A-D) for which MedEvalKit counts ``response`` right on PMC_CHOICES."""
    return [letter for letter in "ABCD" if medevalkit_correct(response, PMC_CHOICES, letter)]


@pytest.mark.parametrize(
    ("response", "right_for"),
    [
        ("", ["A"]),  # nothing similar to any option: difflib's fallback keeps option A
        ("B", ["B"]),
        ("b", ["B"]),
        ("Answer: B", ["B"]),
        ("\\boxed{B}", ["B"]),
        ("\\boxed{}", ["A"]),  # empty box: empty answer, option A
        ("I boxed it: B", ["C"]),  # 'boxed' without \boxed{} reads "none", most like "c:no uptake pattern"
        ("<answer>B</answer>", ["B"]),
        ("B:Focal uptake pattern", ["B"]),
        ("Focal uptake pattern", ["B"]),  # option text without its letter: difflib
        ("A and B", ["A"]),  # two letters: the text before the first '.', most like option A
        ("B or C", ["B"]),
        ("B\n\nBecause the uptake is focal.", ["B"]),  # the first paragraph is a letter
        ("Reasoning first.\n\nC. No uptake", ["C"]),  # the last paragraph starts with a letter
        ("答案:D", ["D"]),  # the ASCII colon is a marker
        ("答案：D", ["A"]),  # the full-width colon is not: difflib on the whole text picks A
        ("A: Cannot determine", ["D"]),  # the head after ':' is " cannot determine" (unstripped): difflib
        ("The image shows a focal uptake pattern in the left breast; answer is B", ["B"]),
        ("x" * 400, ["A"]),  # a long answer is judged like any other (the 300-character check is a no-op)
        ("**Answer**: B", ["B"]),
    ],
)
def test_medevalkit_judge_agrees_with_judge_multi_choice(response, right_for):
    assert medevalkit_letters(response) == right_for


def test_medevalkit_judge_takes_an_option_text_reference_too():
    """judge_multi_choice compares the reference as given: an option string counts as that option."""
    assert medevalkit_correct("B", PMC_CHOICES, "B:Focal uptake pattern")
    assert not medevalkit_correct("A", PMC_CHOICES, "B:Focal uptake pattern")


def test_medevalkit_prompt_is_get_multiple_choice_prompt():
    """utils/question_formats.py get_multiple_choice_prompt (English, not reasoning) at commit 9b12e3b."""
    assert medevalkit_prompt("What is it?", ["A:x", "B:y"]) == (
        "\nQuestion: What is it?\nOptions: \nA:x\nB:y\nAnswer with the option's letter from the given choices "
        "directly."
    )


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("", "Z"),
        ("B", "B"),
        ("Answer: B", "B"),
        ("\\boxed{B}", "B"),  # '{' and '}' are separators
        ("Liver", "B"),  # the option's text
        ("The liver", "B"),
        ("A and B", "Z"),  # two letters
        ("B is right because the lesion is round and bright", "Z"),  # the letter is not among the last 4 words
        ("The answer is a bit unclear", "A"),  # 'answer is a' matches its case-blind pattern
        ("答案：B", "Z"),  # 'B' is not a word of its own
        ("liver or heart", "Z"),  # two options' texts
        ("Cannot determine the answer", "Z"),
        ("(C)", "C"),
        ("I think it is C.", "C"),
        ("The organ shown is the liver, which is enlarged and has a nodular surface typical of cirrhosis", "Z"),
        ("<answer>B</answer>", "Z"),  # '<' and '>' are not separators
    ],
)
def test_vlmevalkit_exact_matching_agrees_with_can_infer(response, letter):
    assert vlmevalkit_choice(response, dict(ORGANS)) == letter


QUESTION = MultipleChoice.of({"A": "Lung", "B": "Liver", "C": "Heart", "D": "Kidney"}, "B")


@pytest.mark.parametrize(
    ("response", "letter"),
    [("B", "B"), ("b", "B"), (" (B). ", "B"), ("**B**", "B"), ("", None), ("Answer: B", None),
     ("\\boxed{B}", None), ("Liver", None), ("A and B", None), ("AB", None), ("E", None), ("答案：B", None),
     ("B" + " because" * 50, None)],
)  # fmt: skip
def test_strict_counts_only_one_unambiguous_letter(response, letter):
    assert strict_letter(response, QUESTION) == letter


def test_the_protocols_disagree_where_the_harnesses_do():
    judged = {name: protocol.judge("The liver", QUESTION) for name, protocol in ANSWER_PROTOCOLS.items()}
    assert judged == {"medevalkit": True, "vlmevalkit": True, "strict": False}
    judged = {name: protocol.judge("", QUESTION) for name, protocol in ANSWER_PROTOCOLS.items()}
    assert judged == {"medevalkit": False, "vlmevalkit": False, "strict": False}
    first = MultipleChoice.of({"A": "Lung", "B": "Liver"}, "A")
    assert [protocol.judge("", first) for protocol in ANSWER_PROTOCOLS.values()] == [True, False, False]


def test_an_unknown_protocol_names_the_choices():
    with pytest.raises(DataError, match="protocol='vibes'; expected one of medevalkit, vlmevalkit, strict"):
        answer_protocol("vibes", "pmc-vqa")


def test_a_reference_outside_the_options_is_refused():
    assert MultipleChoice.of({"A": "A:CT", "B": "B:MRI"}, "MRI").answer_letter == "B"
    with pytest.raises(ValueError, match="not one of the options"):
        MultipleChoice.of({"A": "A:CT", "B": "B:MRI"}, "E")
