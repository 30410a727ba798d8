"""``laterality``: does the answer name the reference's side? A medzoo Reward for GRPO stages.

Left and right are the findings a radiology answer most often gets backwards; this reward pays for the side alone,
whatever else the answer says. The sides are the whole words ``left`` and ``right`` (any case); ``bilateral`` or
``both`` name both.
"""

from __future__ import annotations

import re

from medzoo import Reward, RewardContext

_WORDS = re.compile(r"[a-z]+")
_SIDES = {"left": {"left"}, "right": {"right"}, "bilateral": {"left", "right"}, "both": {"left", "right"}}


def sides(text: str) -> set[str]:
    """The sides ``text`` names: a subset of {"left", "right"}."""
    return {side for word in _WORDS.findall(text.lower()) for side in _SIDES.get(word, ())}


class LateralityReward(Reward):
    """1.0 when the answer names exactly the reference's sides, ``partial`` (default 0.0) when it names them and
    more (hedging "left or right"), 0.0 otherwise. A reference that names no side is a ``ValueError`` naming the
    record (the reward does not apply to it)."""

    name = "laterality"

    def __init__(self, partial: float = 0.0) -> None:
        if isinstance(partial, bool) or not isinstance(partial, (int, float)) or not 0.0 <= partial <= 1.0:
            raise ValueError(f"partial: {partial!r} is not allowed; expected a number in [0, 1]")
        super().__init__(partial=partial)
        self.partial = float(partial)

    def score(self, completion: str, context: RewardContext) -> float:
        expected = sides(context.reference)
        if not expected:
            raise ValueError(f"record {context.record_id}: reference {context.reference!r} names no side; "
                             "laterality expected left, right or bilateral")
        named = sides(completion)
        if named == expected:
            return 1.0
        return self.partial if expected < named else 0.0
