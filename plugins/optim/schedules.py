"""Learning-rate schedules after a linear warmup: cosine decay, linear decay, constant."""

from __future__ import annotations

import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

LRScheduler = torch.optim.lr_scheduler.LRScheduler


def cosine(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, num_cycles: float = 0.5) -> LRScheduler:
    """Cosine decay to 0 over the steps after warmup (``num_cycles`` 0.5: half a cosine wave)."""
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps, num_cycles=num_cycles)


def linear(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int) -> LRScheduler:
    """Linear decay to 0 over the steps after warmup."""
    return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def constant(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int) -> LRScheduler:
    """The recipe's learning rate after warmup."""
    return get_constant_schedule_with_warmup(optimizer, warmup_steps)
