"""``lora``: low-rank adapters (peft) injected into the module's linear layers; the base stays frozen.

Adapters are injected in place (``peft.inject_adapter_in_model``), so module names and state-dict keys of
the base model are unchanged apart from the ``lora_A`` / ``lora_B`` additions; ``merge_lora`` folds them back.
"""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.tuning import TuningStrategy

ADAPTER_NAME = "default"
#: default LoRA targets per module when the recipe names none
DEFAULT_TARGETS: dict[str, list[str] | str] = {
    "language": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "vision": ["q_proj", "k_proj", "v_proj", "out_proj", "qkv", "proj", "fc1", "fc2"],
    "connector": ".*",
}
LORA_KEYS = {"r", "alpha", "dropout", "target_modules", "bias"}


def lora_config(module_name: str, options: dict[str, Any]) -> LoraConfig:
    unknown = set(options) - LORA_KEYS
    if unknown:
        raise RecipeError(
            f"tuning.options.{module_name}: unknown LoRA option(s) {sorted(unknown)}; expected {sorted(LORA_KEYS)}"
        )
    targets = options.get("target_modules", DEFAULT_TARGETS[module_name])
    if targets == ".*":
        targets = "all-linear-in-module"
    return LoraConfig(
        r=int(options.get("r", 8)),
        lora_alpha=int(options.get("alpha", 16)),
        lora_dropout=float(options.get("dropout", 0.0)),
        target_modules=targets,
        bias=options.get("bias", "none"),
    )


def _linear_names(module: nn.Module) -> list[str]:
    return [name for name, child in module.named_modules() if isinstance(child, nn.Linear) and name]


def has_lora(module: nn.Module) -> bool:
    return any(isinstance(child, LoraLayer) for child in module.modules())


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer and put the plain base layer back in place."""
    for name, child in list(module.named_modules()):
        if isinstance(child, LoraLayer):
            child.merge(safe_merge=True)
            parent_name, _, attribute = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attribute, child.get_base_layer())
    return module


class LoraTuning(TuningStrategy):
    name = "lora"

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        module.requires_grad_(False)
        if not has_lora(module):
            config = lora_config(module_name, dict(self.options))
            if config.target_modules == "all-linear-in-module":
                config.target_modules = _linear_names(module)
            inject_adapter_in_model(config, module, adapter_name=ADAPTER_NAME)
            module._medzoo_lora_config = config  # kept for PEFT-format export
        for name, parameter in module.named_parameters():
            if "lora_" in name:
                parameter.requires_grad_(True)
        return module
