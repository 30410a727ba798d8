"""``frozen``: the module is not trained in this stage."""

from __future__ import annotations

from torch import nn

from medzoo import TuningStrategy


class FrozenTuning(TuningStrategy):
    name = "frozen"

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        module.requires_grad_(False)
        return module
