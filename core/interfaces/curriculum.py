"""The curriculum interface: turns the recipe's stage list into the stages actually trained."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Curriculum(ABC):
    """A training schedule over stages (alignment, instruction tuning, downstream...)."""

    name: str = "curriculum"
    #: the stage roles it accepts (a recipe stage's ``role`` must be one; validation asks the curriculum)
    roles: tuple[str, ...] = ("custom",)

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def plan(self, stages: list[Any]) -> list[Any]:
        """Return the stages to run, in order (each a ``StageConfig``), derived from the recipe's stages."""
