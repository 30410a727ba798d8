"""Adapters on a composed model, found and handled through the tuning strategies that own them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from medzoo.core.interfaces.tuning import TuningStrategy
from medzoo.core.plugin_system.manager import components

if TYPE_CHECKING:  # annotations only: the model module is above this one
    from medzoo.core.model.multimodal import MultimodalModel

#: the strategy assumed for adapters of model directories written before the manifest named it
LEGACY_ADAPTER_STRATEGY = "lora"


def tunable_modules(model: MultimodalModel) -> dict[str, nn.Module]:
    """The three modules a tuning strategy acts on, by recipe name."""
    return {"vision": model.vision, "connector": model.connector, "language": model.language.model}


def tuning_strategy(name: str) -> TuningStrategy:
    """A registered tuning strategy with default options (enough to save, load and merge its adapters)."""
    return components().get("tuning", name).factory()


def adapter_owner(module: nn.Module) -> tuple[str, TuningStrategy] | None:
    """The name and instance of the registered strategy whose adapters ``module`` carries, if any."""
    registry = components()
    for name in registry.names("tuning"):
        strategy = registry.get("tuning", name).factory()
        if strategy.has_adapters(module):
            return name, strategy
    return None


def adapted_modules(model: MultimodalModel) -> dict[str, tuple[str, TuningStrategy, nn.Module]]:
    """Module name -> (strategy name, strategy, module) for every module carrying adapters."""
    found = {}
    for module_name, module in tunable_modules(model).items():
        owner = adapter_owner(module)
        if owner is not None:
            found[module_name] = (*owner, module)
    return found


def merge_adapters(model: MultimodalModel) -> list[str]:
    """Fold every module's adapters into its weights (in place); returns the names of the merged modules."""
    merged = []
    for module_name, (_, strategy, module) in adapted_modules(model).items():
        strategy.merge_adapters(module)
        model.trained_modules = getattr(model, "trained_modules", set()) | {module_name}
        merged.append(module_name)
    return merged
