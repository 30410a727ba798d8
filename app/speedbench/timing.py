"""Interleaved timing: every contender runs once per round, in a rotating order, so load from other processes
falls on all of them alike; the first rounds are warmup."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(contenders: dict[str, Callable[[int], object]], rounds: int, warmup: int) -> dict[str, Timing]:
    """Call ``contenders[name](round)`` for ``warmup + rounds`` rounds; times of the last ``rounds`` per name."""
    names = list(contenders)
    timings = {name: Timing() for name in names}
    for index in range(warmup + rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize()
            started = time.perf_counter()
            contenders[name](index)
            synchronize()
            if index >= warmup:
                timings[name].seconds.append(time.perf_counter() - started)
    return timings
