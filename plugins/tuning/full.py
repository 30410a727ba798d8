"""``full``: every parameter of the module is trained (LoRA adapters, if any, are merged first)."""

from __future__ import annotations

from torch import nn

from medzoo.core.interfaces.tuning import TuningStrategy
from medzoo.plugins.tuning.lora import has_lora, merge_lora


class FullTuning(TuningStrategy):
    name = "full"

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        if has_lora(module):
            merge_lora(module)
        module.requires_grad_(True)
        return module
