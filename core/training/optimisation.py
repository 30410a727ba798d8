"""A stage's optimizer and learning-rate schedule, built from the plugins its recipe names."""

from __future__ import annotations

import math
from typing import Any

import torch

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.model.components import as_dict
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.schema import optimizer_options


def _factory(kind: str, name: str, key: str) -> Any:
    try:
        return components().get(kind, name).factory
    except PluginError as error:
        raise RecipeError(f"{key}: {error}") from None


def parameter_groups(model: torch.nn.Module, stage: Any) -> list[dict[str, Any]]:
    """The trainable parameters: one group at the stage's ``lr``, plus one per module named in
    ``optimizer.module_lr`` at its own rate (LLaVA's ``mm_projector_lr``). A module whose parameters are all
    frozen gets no group, so the rate is simply unused (and said nowhere else: the tuning decides)."""
    module_lr = dict(as_dict(stage.optimizer.get("module_lr", None) or {}))
    own: dict[str, list[torch.nn.Parameter]] = {name: [] for name in module_lr}
    rest: list[torch.nn.Parameter] = []
    claimed: set[int] = set()
    for name in module_lr:
        module = getattr(model, name, None)
        if not isinstance(module, torch.nn.Module):
            raise RecipeError(
                f"stages.{stage.name}.optimizer.module_lr.{name}: the model has no {name!r} module"
            )
        for parameter in module.parameters():
            if parameter.requires_grad and id(parameter) not in claimed:
                own[name].append(parameter)
                claimed.add(id(parameter))
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in claimed]
    groups = [{"params": rest}] if rest else []
    groups += [{"params": params, "lr": float(module_lr[name])} for name, params in own.items() if params]
    return groups


def build_optimizer(model: torch.nn.Module, stage: Any) -> torch.optim.Optimizer:
    """The stage's ``optimizer`` plugin over the model's trainable parameters (see :func:`parameter_groups`)."""
    groups = parameter_groups(model, stage)
    if not groups:
        raise RecipeError(f"stage {stage.name!r}: every module is frozen; nothing to train")
    config = stage.optimizer
    factory = _factory("optimizer", config.name, f"stages.{stage.name}.optimizer.name")
    options = optimizer_options(config)
    return factory(groups, lr=config.lr, weight_decay=config.weight_decay, **options)


def build_schedule(optimizer: torch.optim.Optimizer, stage: Any, total_steps: int) -> Any:
    """The stage's ``schedule`` plugin: warmup over ``ceil(warmup_ratio * total_steps)`` steps."""
    config = stage.schedule
    factory = _factory("lr_schedule", config.name, f"stages.{stage.name}.schedule.name")
    warmup = math.ceil(config.warmup_ratio * total_steps)
    return factory(optimizer, warmup_steps=warmup, total_steps=total_steps, **as_dict(config.options))
