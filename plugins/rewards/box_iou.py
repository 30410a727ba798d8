"""``box-iou``: the IoU of a ColonINST REC box, read by the IntelliScope evaluator's parser as the ColonINST
benchmark reads it (``metrics.scoring``: ``clean_coloninst``, ``box_numbers``, ``box_iou``)."""

from __future__ import annotations

from medzoo import RewardContext
from medzoo.plugins.benchmarks.metrics.scoring import (
    box_iou,
    box_numbers,
    clean_coloninst,
    clean_coloninst_reference,
)
from medzoo.plugins.rewards.answer_reward import AnswerReward
from medzoo.plugins.rewards.options import checked_choice

MODES = ("iou", "hit")


class BoxIouReward(AnswerReward):
    """The IoU of the answer's box ``{<x1><y1><x2><y2>}`` with the reference's, as the benchmark's ``mean_iou``
    counts it per item (``mode: iou``, default, in [0, 1]), or 1.0 / 0.0 for IoU > 0.5 (``mode: hit``, the
    benchmark's ``acc_at_0_5``). As the evaluator: every ``<n>`` in the lower-cased answer is read, anything but
    four integers scores 0, corners are inclusive pixels (a box ``<5><5><5><5>`` is one pixel; an inverted box
    scores 0). A reference without exactly four integers is a ``ValueError`` naming the record (the benchmark
    scores such an item 0). Option ``answer_tag`` (see ``AnswerReward``)."""

    name = "box-iou"

    def __init__(self, mode: str = "iou", answer_tag: bool = False) -> None:
        super().__init__(answer_tag=answer_tag, mode=checked_choice("mode", mode, MODES))
        self.mode = mode

    def score_answer(self, answer: str, context: RewardContext) -> float:
        reference = box_numbers(clean_coloninst_reference(context.reference))
        if len(reference) != 4:
            raise ValueError(f"record {context.record_id}: reference {context.reference!r} is not one box; "
                             "expected {<x1><y1><x2><y2>}")
        iou = box_iou(box_numbers(clean_coloninst(answer)), reference)
        if self.mode == "hit":
            return 1.0 if iou > 0.5 else 0.0
        return iou
