"""Log-probabilities of the labelled tokens of a batch, per token and per row (preference and RL objectives).

Like :func:`~medzoo.core.training.loss.summed_loss`, logits are computed only where a target follows
(``logits_to_keep`` as a boolean mask), so image, prompt and pad positions never reach the LM head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from medzoo.core.training.loss import target_mask


def token_log_probs(
    model: Any, batch: Mapping[str, torch.Tensor], temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, row)`` of every labelled token of ``batch`` under ``model``, in row-major order (float32).

    ``temperature``: the log-probabilities of the distribution tokens were sampled from (logits / temperature), as
    TRL's GRPOTrainer computes them; 1 is the model's own distribution.
    """
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    labels = batch["labels"]
    keep = target_mask(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    if logits.dim() == 3:  # a language model without boolean logits_to_keep: project everything, select here
        logits = logits[keep]
    log_probs = -F.cross_entropy(logits.float() / temperature, targets, reduction="none")
    return log_probs, keep.nonzero(as_tuple=True)[0]


def row_sums(values: torch.Tensor, rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``values`` summed per row (``[num_rows]``; a row without labelled tokens sums to 0)."""
    return torch.zeros(num_rows, dtype=values.dtype, device=values.device).index_add(0, rows, values)


def row_counts(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Labelled tokens per row (``[num_rows]``, float)."""
    return torch.bincount(rows, minlength=num_rows).to(torch.float32)
