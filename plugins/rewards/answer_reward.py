"""What the answer-scoring rewards share: the ``answer_tag`` option (score only the ``<answer>`` content)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from medzoo import Reward, RewardContext
from medzoo.plugins.rewards.format import answer_part
from medzoo.plugins.rewards.options import checked_bool


class AnswerReward(Reward):
    """A reward of the answer a completion gives. With ``answer_tag: true`` (for recipes that turn the ``format``
    reward on) only the content of the completion's last ``<answer>…</answer>`` is scored, and a completion
    without one is scored as the empty answer."""

    def __init__(self, answer_tag: bool = False, **options: Any) -> None:
        super().__init__(answer_tag=checked_bool("answer_tag", answer_tag), **options)
        self.answer_tag = answer_tag

    def answer(self, completion: str) -> str:
        """The part of ``completion`` this reward scores."""
        return answer_part(completion) if self.answer_tag else completion

    def score(self, completion: str, context: RewardContext) -> float:
        return self.score_answer(self.answer(completion), context)

    @abstractmethod
    def score_answer(self, answer: str, context: RewardContext) -> float:
        """The reward of the answer (the completion, or its ``<answer>`` content)."""
