"""A stage's objective, built by its plugin from the recipe's ``objective`` section."""

from __future__ import annotations

from typing import Any

from medzoo.core.interfaces.objective import Objective
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.objective_section import objective_spec


def stage_objective(stage: Any) -> Objective:
    """The stage's objective (``sft`` when the stage names none)."""
    name, options = objective_spec(stage)
    return components().get("objective", name).factory(**options)
