"""A stage's tuning strategies checked against their modules (and the run's device) before any weights load."""

from __future__ import annotations

from typing import Any

import torch

from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.tuning import MODULES, TuningStrategy
from medzoo.core.model.components import as_dict
from medzoo.core.model.weightless import weightless_model
from medzoo.core.plugin_system.manager import components


def stage_strategies(tuning: Any) -> dict[str, TuningStrategy]:
    """Module name -> the stage's strategy for it, built with its options (no module touched)."""
    spec = as_dict(tuning)
    options = spec.get("options") or {}
    return {
        name: components().get("tuning", spec.get(name, "frozen")).factory(**(options.get(name) or {}))
        for name in MODULES
    }


def check_stage_tuning(stage: Any, device: torch.device | None = None) -> None:
    """Raise the first strategy's one-line ``RecipeError`` (``stages.<name>.tuning...``: key, value, what is
    allowed) for options it cannot honour, on ``device`` when given (a 4-bit backend for QLoRA)."""
    for name, strategy in stage_strategies(stage.tuning).items():
        try:
            strategy.check(name, device)
        except RecipeError as error:
            raise RecipeError(f"stages.{stage.name}.{error}") from None


def check_before_weights(recipe: Any, stages: list[Any]) -> None:
    """The recipe's model built weightless (core/model/weightless.py: the tiling grid, the image-token cap and
    multi-scale features checked against the tower and connector) and each stage's strategies checked against
    the modules they tune (DoRA's layer types, LoRA targets that exist, partial's depth): the first problem
    raises its one-line ``RecipeError``, before any weights load."""
    model = weightless_model(recipe.model, shrink=bool(recipe.shrink))
    if model is None:  # a component that only loading tells about: its checks run as the model builds
        return
    for stage in stages:
        for name, strategy in stage_strategies(stage.tuning).items():
            module = model.language.model if name == "language" else getattr(model, name)
            try:
                strategy.check_module(module, name)
            except RecipeError as error:
                raise RecipeError(f"stages.{stage.name}.{error}") from None
