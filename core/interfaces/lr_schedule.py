"""Learning-rate schedules: a named factory that wraps an optimizer in a torch LR scheduler stepped once per
optimizer step.

The trainer calls ``factory(optimizer, warmup_steps=..., total_steps=..., **schedule.options)``; the scheduler's
state is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class LRScheduleFactory(Protocol):
    """A registered learning-rate schedule (kind ``lr_schedule``)."""

    def __call__(
        self, optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, **options: Any
    ) -> torch.optim.lr_scheduler.LRScheduler: ...
