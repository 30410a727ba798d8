"""The training loss: next-token cross-entropy summed over target tokens and divided by a given count.

Dividing by the number of target tokens of the whole optimizer step (all micro-batches, all processes) makes
gradient accumulation and data parallelism give the gradient of one big batch. Logits are computed only where a
target follows (``logits_to_keep`` as a boolean mask), which skips the LM head on image, prompt and pad positions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medzoo.core.model.processor import IGNORE_INDEX


def count_targets(labels: torch.Tensor) -> int:
    """Positions that are predicted (a label follows that is not ignored)."""
    return int((labels[..., 1:] != IGNORE_INDEX).sum())


def target_mask(labels: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` boolean: True where the logit predicts a target (the next label is not ignored)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def summed_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of token cross-entropies of ``batch`` (``labels`` included) under ``model``."""
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    labels = batch["labels"]
    keep = target_mask(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    if logits.dim() == 3:  # a language model without boolean logits_to_keep: project everything, select here
        logits = logits[keep]
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def step_loss(model: Any, batch: dict[str, torch.Tensor], num_targets: int, scale: float = 1.0) -> torch.Tensor:
    """``scale x summed_loss / num_targets`` (``scale`` = processes, undoing DDP's gradient averaging)."""
    return summed_loss(model, batch) * (scale / max(1, num_targets))
