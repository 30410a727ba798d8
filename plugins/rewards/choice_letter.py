"""``choice-letter``: a multiple-choice answer scored with MedVLM-R1's 1 / 0.5 / 0 scheme, judged by the answer
parser the multiple-choice benchmarks use (``benchmarks.multiple_choice.parsers``).

MedVLM-R1 (JZPeterPan/MedVLM-R1 ``src/open-r1-multimodal/src/open_r1/grpo.py`` ``accuracy_reward``, commit
2eee4210): 1.0 for exactly one letter A-J and no other text when it is the right one, 0.5 for the right letter with
extra text, 0.0 otherwise (no letter, a wrong one, several letters). Here "the right letter" is what the
benchmark's answer protocol reads, so a reward above 0 is an answer the leaderboard counts right.
"""

from __future__ import annotations

from collections.abc import Mapping

from medzoo import RewardContext
from medzoo.plugins.benchmarks.multiple_choice.parsers import ANSWER_PROTOCOLS, strict_letter
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.vlmevalkit import SEPARATORS
from medzoo.plugins.rewards.answer_reward import AnswerReward
from medzoo.plugins.rewards.options import checked_choice

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def named_letters(answer: str, question: MultipleChoice) -> set[str]:
    """The option letters the answer names as words of their own (capitals only; words split at blanks and at
    VLMEvalKit's separators ``.()[],:;!*#{}``, so ``(B)``, ``B.``, ``\\boxed{B}`` and ``Answer: B`` name B)."""
    for char in SEPARATORS:
        answer = answer.replace(char, " ")
    return {word for word in answer.split() if word in question.options}


def question_of(context: RewardContext) -> MultipleChoice:
    """The question a record asks: ``metadata["choice"]`` (a ``MultipleChoice``, as benchmark items carry it), else
    ``metadata["options"]`` (letter -> option text, or a list of option texts lettered A, B, ... in order) with
    the reference answer (a letter, or one option's text). Anything else: ``ValueError`` naming the record."""
    metadata = context.metadata
    if isinstance(metadata.get("choice"), MultipleChoice):
        return metadata["choice"]
    options = metadata.get("options")
    if isinstance(options, Mapping) and options and all(isinstance(k, str) and len(k) == 1 for k in options):
        lettered = {str(letter).upper(): str(text) for letter, text in options.items()}
    elif isinstance(options, list | tuple) and 0 < len(options) <= len(OPTION_LETTERS):
        lettered = {OPTION_LETTERS[index]: str(text) for index, text in enumerate(options)}
    else:
        raise ValueError(f"record {context.record_id}: metadata 'options' is {options!r}; choice-letter expected "
                         "metadata 'choice' or 'options' (letter -> text, or a list of option texts)")
    try:
        return MultipleChoice.of(lettered, context.reference)
    except ValueError as error:
        raise ValueError(f"record {context.record_id}: reference {error}") from None


class ChoiceLetterReward(AnswerReward):
    """MedVLM-R1's scheme, with the benchmark's parser deciding what is right:

    - 0.0 when the answer is empty, names two or more different option letters (``A or B``), or the answer
      protocol (option ``protocol``) does not count it right;
    - 1.0 when, besides, the answer is one option letter and nothing else (what the ``strict`` protocol reads:
      ``B``, ``(B)``, ``B.``, ``**B**``, blanks around it; ``b`` too, but VLMEvalKit, the default protocol, reads
      capitals only and counts ``b`` wrong, so it earns 0 there);
    - 0.5 for any other answer the protocol counts right (``Answer: B``, ``\\boxed{B}``, ``B: CT scan``, the
      option's text alone).

    ``protocol``: ``vlmevalkit`` (default; VLMEvalKit's exact matching: a letter among the last words or one
    option's text), ``medevalkit`` (MedEvalKit's judge, whose difflib fallback counts any text as the most
    similar option) or ``strict``. The question comes from the record's metadata (``question_of``: ``choice`` or
    ``options`` with the reference). Option ``answer_tag`` (see ``AnswerReward``).
    """

    name = "choice-letter"

    def __init__(self, protocol: str = "vlmevalkit", answer_tag: bool = False) -> None:
        super().__init__(answer_tag=answer_tag, protocol=checked_choice("protocol", protocol, tuple(ANSWER_PROTOCOLS)))
        self.judge = ANSWER_PROTOCOLS[protocol].judge

    def score_answer(self, answer: str, context: RewardContext) -> float:
        question = question_of(context)
        if not answer.strip() or len(named_letters(answer, question)) > 1 or not self.judge(answer, question):
            return 0.0
        return 1.0 if strict_letter(answer, question) == question.answer_letter else 0.5
