"""Optimizers: a named factory that turns parameter groups and a stage's ``optimizer`` keys into a torch optimizer.

The trainer calls ``factory(param_groups, lr=..., weight_decay=..., **options)``, where ``options`` are the stage's
other ``optimizer`` keys that are set (not null) plus ``optimizer.options``. A factory names the keyword arguments
it accepts; a recipe that sets one it does not accept is rejected when the recipe is loaded.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

#: what ``torch.optim.Optimizer`` takes: dicts with ``params`` and per-group settings
ParamGroups = list[dict[str, Any]]


class OptimizerFactory(Protocol):
    """A registered optimizer (kind ``optimizer``)."""

    def __call__(
        self, param_groups: ParamGroups, *, lr: float, weight_decay: float, **options: Any
    ) -> torch.optim.Optimizer: ...


def keyword_options(factory: Any, positional: int = 1) -> set[str] | None:
    """The keyword arguments ``factory`` accepts after its first ``positional`` arguments (``None``: any, it takes
    ``**options``)."""
    parameters = list(inspect.signature(factory).parameters.values())[positional:]
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {parameter.name for parameter in parameters if parameter.kind is not inspect.Parameter.VAR_POSITIONAL}
