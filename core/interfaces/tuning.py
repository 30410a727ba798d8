"""Tuning strategies: how one module (vision, connector or language model) is trained in a stage.

A strategy that adds adapters (LoRA and its kin) also owns their persistence: model saving, loading, merging
and export go through these methods and never import a concrete strategy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODULES: tuple[str, ...] = ("vision", "connector", "language")


class TuningStrategy(ABC):
    """Prepares one module for a stage: freeze it, train it fully, or wrap it with adapters."""

    name: str = "strategy"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def check(self, module_name: str, device: torch.device | None = None) -> None:  # noqa: B027 - optional
        """Raise ``RecipeError`` (one line naming the key, the value and what is allowed) when these options cannot
        tune ``module_name``, on ``device`` when it is given; called before any weights load (recipe validation
        without a device, the start of a training run with its device)."""

    def check_module(self, module: nn.Module, module_name: str) -> None:  # noqa: B027 - optional
        """Raise ``RecipeError`` (one line: key, value, what is allowed) when these options cannot tune ``module``
        as built (layer names and types, depth); called on a weightless copy of the model (parameters on the
        ``meta`` device) before any weights load, so it must read the module's structure only."""

    @abstractmethod
    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        """Set ``requires_grad`` (and inject adapters) on ``module``; return the module to use."""

    # adapter persistence: strategies without adapters keep these defaults

    def has_adapters(self, module: nn.Module) -> bool:
        """Whether ``module`` carries this strategy's (unmerged) adapters."""
        return False

    def base_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's weights without this strategy's adapter tensors, under the base model's keys."""
        return {key: value.detach().contiguous() for key, value in module.state_dict().items()}

    def save_adapters(self, module: nn.Module, directory: Path, module_name: str, base_model: str | None) -> dict:
        """Write the adapters of ``module`` into ``directory``; returns what the manifest records about them."""
        raise NotImplementedError(f"tuning strategy {self.name!r} has no adapters to save")

    def load_adapters(self, module: nn.Module, directory: Path, module_name: str) -> nn.Module:
        """Inject the adapters saved in ``directory`` into ``module`` (in place); returns the module."""
        raise NotImplementedError(f"tuning strategy {self.name!r} has no adapters to load")

    def merge_adapters(self, module: nn.Module) -> nn.Module:
        """Fold the adapters into the base weights and remove them; returns the plain module."""
        return module


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
