"""``exact-match``: closed answers (yes/no, left/right...), normalised exactly as the medical-VQA benchmarks
(VQA-RAD, SLAKE, PathVQA) normalise them before their closed accuracy (``metrics.scoring.medvqa_answer``)."""

from __future__ import annotations

from collections.abc import Callable

from medzoo import RewardContext
from medzoo.plugins.benchmarks.metrics.scoring import closed_hit, closed_hit_strict, medvqa_answer
from medzoo.plugins.rewards.answer_reward import AnswerReward
from medzoo.plugins.rewards.options import checked_choice


def _equal(prediction: str, reference: str) -> bool:
    return prediction == reference


#: ``match`` -> the criterion on the two normalised answers
CRITERIA: dict[str, Callable[[str, str], bool]] = {
    "exact": _equal,
    "strict": closed_hit_strict,
    "substring": closed_hit,
}


class ExactMatchReward(AnswerReward):
    """1.0 when the answer matches the reference after LLaVA-Med's normalisation (lower-case, punctuation, articles,
    number words, contractions), else 0.0.

    Option ``match``: ``exact`` (default; the normalised texts are equal), ``strict`` (the benchmark's
    ``closed_accuracy_strict``: a yes/no reference equals the first yes/no word, another reference appears as whole
    words) or ``substring`` (the benchmark's ``closed_accuracy``, the official criterion: the reference is a
    substring of the answer, so "yes no" matches both yes and no; a policy learns to exploit it). A reward of 1
    under ``exact`` is a hit under both benchmark criteria. Option ``answer_tag`` (see ``AnswerReward``).
    A reference that normalises to nothing is a ``ValueError`` naming the record.
    """

    name = "exact-match"

    def __init__(self, match: str = "exact", answer_tag: bool = False) -> None:
        super().__init__(answer_tag=answer_tag, match=checked_choice("match", match, tuple(CRITERIA)))
        self.criterion = CRITERIA[match]

    def score_answer(self, answer: str, context: RewardContext) -> float:
        reference = medvqa_answer(context.reference)
        if not reference:
            raise ValueError(f"record {context.record_id}: reference {context.reference!r} is empty once "
                             "normalised; expected a closed answer such as yes or no")
        return 1.0 if self.criterion(medvqa_answer(answer), reference) else 0.0
