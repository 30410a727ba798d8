"""``smoothed-sft``: supervised tuning with label-smoothed cross-entropy (Szegedy et al. 2016), a medzoo Objective.

The conversation encoding, batching and step normalisation are the ``sft`` objective's (the base class's defaults
and the step's target tokens); only the per-token loss changes: ``(1 - smoothing)`` of the weight on the next
token and ``smoothing`` spread over the vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medzoo import IGNORE_INDEX, Objective, ObjectiveLoss


class SmoothedSupervisedObjective(Objective):
    name = "smoothed-sft"

    def __init__(self, smoothing: float = 0.1) -> None:
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing: {smoothing!r} is out of range; expected a number in [0, 1)")
        super().__init__(smoothing=smoothing)
        self.smoothing = float(smoothing)

    def normaliser(self, samples: Sequence[Any]) -> int:
        """The step's predicted tokens, as ``sft`` counts them."""
        return sum(sum(1 for label in sample.labels[1:] if label >= 0) for sample in samples)

    def loss(
        self, model: Any, batch: Mapping[str, torch.Tensor], normaliser: int, scale: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> ObjectiveLoss:
        labels = batch["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX  # positions whose next token is a target
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        logits = model(**inputs, use_cache=False).logits[keep].float()
        targets = labels[:, 1:][keep[:, :-1]]
        summed = F.cross_entropy(logits, targets, reduction="sum", label_smoothing=self.smoothing)
        plain = F.cross_entropy(logits.detach(), targets, reduction="sum")
        factor = scale / max(1, normaliser)
        return ObjectiveLoss(summed * factor, {"loss/cross_entropy": plain * factor})
