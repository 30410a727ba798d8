"""``length``: DAPO's soft overlong punishment (Yu et al. 2025, "DAPO", arXiv 2503.14476, eq. 13), in [-1, 0]."""

from __future__ import annotations

from typing import Any

from medzoo import Reward, RewardContext
from medzoo.plugins.rewards.options import checked_bool, checked_int


class LengthReward(Reward):
    """With ``L`` the completion's length in tokens (``context.completion_tokens``), ``max_tokens`` the budget and
    ``cache_tokens`` the soft window: 0 for ``L <= max_tokens - cache_tokens``, then linearly down to -1 at
    ``L = max_tokens`` (``(max_tokens - cache_tokens - L) / cache_tokens``), and -1 beyond. ``cache_tokens: 0``
    is a hard cliff at the budget. ``penalise_truncated`` (default false): a completion cut off by the rollout's
    token limit (``finish_reason == "length"``) scores -1 whatever its length.

    ``max_tokens`` (an integer >= 1) and ``cache_tokens`` (0 to ``max_tokens``) are required: DAPO used 20480 and
    4096. A non-empty completion with ``completion_tokens == 0`` is a ``ValueError`` naming the record (the
    objective did not say how long it is).
    """

    name = "length"

    def __init__(self, max_tokens: Any = None, cache_tokens: Any = None, penalise_truncated: bool = False) -> None:
        if max_tokens is None or cache_tokens is None:
            missing = "max_tokens" if max_tokens is None else "cache_tokens"
            raise ValueError(f"{missing}: missing; expected an integer (the token budget max_tokens >= 1 and the "
                             "soft window cache_tokens, 0 to max_tokens)")
        checked_int("max_tokens", max_tokens, 1)
        checked_int("cache_tokens", cache_tokens, 0)
        if cache_tokens > max_tokens:
            raise ValueError(f"cache_tokens: {cache_tokens!r} is not allowed; expected at most max_tokens "
                             f"({max_tokens})")
        super().__init__(max_tokens=max_tokens, cache_tokens=cache_tokens,
                         penalise_truncated=checked_bool("penalise_truncated", penalise_truncated))
        self.max_tokens, self.cache_tokens, self.penalise_truncated = max_tokens, cache_tokens, penalise_truncated

    def score(self, completion: str, context: RewardContext) -> float:
        length = context.completion_tokens
        if length == 0 and completion:
            raise ValueError(f"record {context.record_id}: completion_tokens is 0 for a non-empty completion; "
                             "the length reward expected the completion's token count")
        if self.penalise_truncated and context.finish_reason == "length":
            return -1.0
        free = self.max_tokens - self.cache_tokens
        if length <= free:
            return 0.0
        if length > self.max_tokens:
            return -1.0
        return (free - length) / self.cache_tokens
