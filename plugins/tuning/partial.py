"""``partial``: only the top ``top_layers`` blocks of the module's layer stack are trained, the rest frozen.

For the language model the top decoder layers (embeddings, final norm and LM head stay frozen); for a vision
tower the top blocks of those that produce the selected hidden state (a tower reading layer -2 trains blocks
below its last one; a fusion of towers trains the top blocks of each tower). Nothing is added to the module, so
it saves, loads, merges (nothing to merge) and exports as a fully trained module does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo import RecipeError, TuningStrategy, adapter_owner
from medzoo.plugins.tuning.layer_stacks import layer_stacks

PARTIAL_KEYS = ("top_layers",)
#: modules that hold a stack of transformer blocks
LAYERED_MODULES = ("vision", "language")


class PartialTuning(TuningStrategy):
    name = "partial"

    def check(self, module_name: str, device: torch.device | None = None) -> None:
        if module_name not in LAYERED_MODULES:
            raise RecipeError(f"tuning.{module_name}: 'partial' trains the top layers of a stack of blocks; "
                              f"allowed on {' and '.join(LAYERED_MODULES)} (use full or frozen for the {module_name})")
        unknown = sorted(set(self.options) - set(PARTIAL_KEYS))
        if unknown:
            raise RecipeError(f"tuning.options.{module_name}: unknown partial option(s) {unknown}; "
                              f"expected {list(PARTIAL_KEYS)}")
        self._top_layers(module_name)

    def _top_layers(self, module_name: str) -> int:
        key = f"tuning.options.{module_name}.top_layers"
        value: Any = self.options.get("top_layers")
        if value is None:
            raise RecipeError(f"{key}: missing; expected an integer >= 1 (how many top layers to train)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecipeError(f"{key}: {value!r}; expected an integer >= 1 (how many top layers to train)")
        return value

    def check_module(self, module: nn.Module, module_name: str) -> None:
        self._stacks(module, module_name)

    def _stacks(self, module: nn.Module, module_name: str) -> dict[str, Any]:
        """The module's stacks of blocks, refused in one line when there is none or ``top_layers`` exceeds one."""
        self.check(module_name)
        top = self._top_layers(module_name)
        stacks = layer_stacks(module)
        if not stacks:
            raise RecipeError(f"tuning.{module_name}: 'partial' finds no stack of layers in the {module_name} "
                              f"({type(module).__name__}); expected a module with transformer blocks")
        fewest = min(len(blocks) for blocks in stacks.values())
        if top > fewest:
            raise RecipeError(f"tuning.options.{module_name}.top_layers: {top} exceeds the {module_name}'s {fewest} "
                              f"layers that run; expected an integer from 1 to {fewest}")
        return stacks

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        stacks = self._stacks(module, module_name)
        top = self._top_layers(module_name)
        owner = adapter_owner(module)
        if owner is not None:  # another stage's adapters: folded in first, as full tuning does
            owner[1].merge_adapters(module)
        module.requires_grad_(False)
        for blocks in stacks.values():
            for block in blocks[-top:]:
                block.requires_grad_(True)
        return module
