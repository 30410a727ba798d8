"""``format``: 1 when a completion is ``<think>…</think><answer>…</answer>`` and nothing else, else 0; and
``answer_part``, the ``<answer>`` content the other rewards score when a recipe turns the format on.

MedVLM-R1 (JZPeterPan/MedVLM-R1 ``src/open-r1-multimodal/src/open_r1/grpo.py`` ``format_reward``, commit
2eee4210) scores ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", completion, re.DOTALL)``. This
reward differs in two stated ways: blanks around the whole completion are ignored, and neither part may contain
another ``<think>``/``<answer>`` tag (MedVLM-R1's lazy ``.*?`` still lets ``<answer>A</answer><answer>B</answer>``
pass).
"""

from __future__ import annotations

import re

from medzoo import Reward, RewardContext
from medzoo.plugins.rewards.options import checked_bool

#: text holding no think or answer tag
_UNTAGGED = r"(?:(?!</?(?:think|answer)>).)*"
THINK_ANSWER = re.compile(rf"<think>{_UNTAGGED}</think>\s*<answer>{_UNTAGGED}</answer>", re.DOTALL)
ANSWER_ONLY = re.compile(rf"<answer>{_UNTAGGED}</answer>", re.DOTALL)
ANSWER_SPAN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def answer_part(text: str) -> str:
    """The content of the last ``<answer>…</answer>`` (tags in any case), stripped; ``""`` when there is none."""
    spans = ANSWER_SPAN.findall(text)
    return spans[-1].strip() if spans else ""


class FormatReward(Reward):
    """1.0 when the completion (blanks around it ignored) is exactly ``<think>…</think>`` then ``<answer>…</answer>``
    (blanks allowed between them), else 0.0. Option ``think`` (default true): false asks for
    ``<answer>…</answer>`` alone."""

    name = "format"

    def __init__(self, think: bool = True) -> None:
        super().__init__(think=checked_bool("think", think))
        self.pattern = THINK_ANSWER if think else ANSWER_ONLY

    def score(self, completion: str, context: RewardContext) -> float:
        return 1.0 if self.pattern.fullmatch(completion.strip()) else 0.0
