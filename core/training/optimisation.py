"""A stage's optimizer and learning-rate schedule, built from the plugins its recipe names."""

from __future__ import annotations

import math
from typing import Any

import torch

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.model.build import as_dict
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.schema import optimizer_options


def _factory(kind: str, name: str, key: str) -> Any:
    try:
        return components().get(kind, name).factory
    except PluginError as error:
        raise RecipeError(f"{key}: {error}") from None


def build_optimizer(model: torch.nn.Module, stage: Any) -> torch.optim.Optimizer:
    """The stage's ``optimizer`` plugin over the model's trainable parameters (one parameter group)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise RecipeError(f"stage {stage.name!r}: every module is frozen; nothing to train")
    config = stage.optimizer
    factory = _factory("optimizer", config.name, f"stages.{stage.name}.optimizer.name")
    options = optimizer_options(config)
    return factory([{"params": parameters}], lr=config.lr, weight_decay=config.weight_decay, **options)


def build_schedule(optimizer: torch.optim.Optimizer, stage: Any, total_steps: int) -> Any:
    """The stage's ``schedule`` plugin: warmup over ``ceil(warmup_ratio * total_steps)`` steps."""
    config = stage.schedule
    factory = _factory("lr_schedule", config.name, f"stages.{stage.name}.schedule.name")
    warmup = math.ceil(config.warmup_ratio * total_steps)
    return factory(optimizer, warmup_steps=warmup, total_steps=total_steps, **as_dict(config.options))
