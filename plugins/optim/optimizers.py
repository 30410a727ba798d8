"""AdamW (the LLaVA-Med trainer's) and SGD."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medzoo import ParamGroups


def adamw(
    param_groups: ParamGroups,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    fused: bool = False,
) -> torch.optim.Optimizer:
    """``torch.optim.AdamW``; ``fused`` selects torch's fused kernel (CUDA and CPU)."""
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=fused or None)


def sgd(
    param_groups: ParamGroups,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    nesterov: bool = False,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (``nesterov`` needs ``momentum`` > 0)."""
    return torch.optim.SGD(
        param_groups, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, fused=fused or None
    )
