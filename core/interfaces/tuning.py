"""Tuning strategies: how one module (vision, connector or language model) is trained in a stage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import nn

MODULES: tuple[str, ...] = ("vision", "connector", "language")


class TuningStrategy(ABC):
    """Prepares one module for a stage: freeze it, train it fully, or wrap it with adapters."""

    name: str = "strategy"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        """Set ``requires_grad`` (and inject adapters) on ``module``; return the module to use."""


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
