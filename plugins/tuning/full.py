"""``full``: every parameter of the module is trained (adapters of another strategy, if any, are merged first)."""

from __future__ import annotations

from torch import nn

from medzoo import TuningStrategy, adapter_owner


class FullTuning(TuningStrategy):
    name = "full"

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        owner = adapter_owner(module)
        if owner is not None:
            owner[1].merge_adapters(module)
        module.requires_grad_(True)
        return module
