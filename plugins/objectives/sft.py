"""``sft``: supervised instruction tuning, next-token cross-entropy on the assistant replies.

The step loss is the sum of token cross-entropies of the micro-batch divided by the target tokens of the whole
optimizer step (all micro-batches, all processes), so accumulation and data parallelism give the gradient of one
big batch. This is the objective of every stage that names none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from medzoo import Objective, ObjectiveLoss, summed_loss


class SupervisedObjective(Objective):
    """Takes no options."""

    name = "sft"

    def __init__(self) -> None:
        super().__init__()

    def normaliser(self, samples: Sequence[Any]) -> int:
        """Predicted tokens of the step (labels after the first that are not ignored)."""
        return sum(sum(1 for label in sample.labels[1:] if label >= 0) for sample in samples)

    def loss(
        self, model: Any, batch: Mapping[str, torch.Tensor], normaliser: int, scale: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> ObjectiveLoss:
        return ObjectiveLoss(summed_loss(model, batch) * (scale / max(1, normaliser)))
