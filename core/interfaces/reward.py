"""The reward interface: how good one generated answer is, for objectives that learn from rewards (GRPO).

A recipe's GRPO stage lists its rewards with a weight each (``objective: {name: grpo, rewards: {exact-match: 1.0,
format: 0.5}}``); the objective sums ``weight x score`` per completion and logs each reward's mean as
``rewards/<name>``. A reward that stands for a benchmark metric uses the same parser and normalisation as that
metric, so training optimises what the leaderboard scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RewardContext:
    """What a reward knows about the prompt a completion answers.

    ``reference``: the record's reference answer (its last assistant message); ``question``: the last user
    message; ``metadata``: the record's metadata (the dataset reader's, e.g. ``answer_type``, ``task``,
    ``options``); ``completion_tokens``: the completion's length in tokens (for length rewards).
    """

    record_id: str
    reference: str
    question: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    completion_tokens: int = 0
    #: "stop" (end of sequence or a stop string) or "length" (the token budget ran out)
    finish_reason: str = "stop"


class Reward(ABC):
    """A verifiable reward; ``options`` are the recipe's keys for it (checked against the signature).

    Subclasses take their options as keyword arguments and raise ``ValueError`` with a one-line message naming
    the option for a value out of range.
    """

    name: str = "reward"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def score(self, completion: str, context: RewardContext) -> float:
        """The reward of one completion (a finite float; most rewards lie in [0, 1])."""

    def score_batch(self, completions: Sequence[str], contexts: Sequence[RewardContext]) -> list[float]:
        """Rewards of many completions (override to batch, e.g. a model-based reward)."""
        return [float(self.score(c, x)) for c, x in zip(completions, contexts, strict=True)]

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of the reward: its name and options."""
        return {"name": self.name, **self.options}
