"""``token-f1``: token F1 or recall of an open answer, tokenised and normalised as the medical-VQA benchmarks
score open questions (``metrics.scoring.medvqa_answer`` then ``medvqa_token_scores``)."""

from __future__ import annotations

from medzoo import RewardContext
from medzoo.plugins.benchmarks.metrics.scoring import medvqa_answer, medvqa_token_scores
from medzoo.plugins.rewards.answer_reward import AnswerReward
from medzoo.plugins.rewards.options import checked_choice

MODES = ("f1", "recall")


class TokenF1Reward(AnswerReward):
    """The answer's token F1 (``mode: f1``, default) or recall (``mode: recall``: the benchmarks' ``open_recall``,
    the LLaVA-Med paper's Open column) against the reference, in [0, 1]. Recall alone rewards answers that list
    every word they know; F1 also counts the extra words against them. Option ``answer_tag`` (see
    ``AnswerReward``)."""

    name = "token-f1"

    def __init__(self, mode: str = "f1", answer_tag: bool = False) -> None:
        super().__init__(answer_tag=answer_tag, mode=checked_choice("mode", mode, MODES))
        self.mode = mode

    def score_answer(self, answer: str, context: RewardContext) -> float:
        f1, _, recall = medvqa_token_scores(medvqa_answer(answer), medvqa_answer(context.reference))
        return f1 if self.mode == "f1" else recall
