"""``qlora``: LoRA adapters over 4-bit base weights (bitsandbytes), where the run's device has a 4-bit backend.

Every Linear layer of the module is quantised (the LM head and the projections inside ``nn.MultiheadAttention``,
which reads its weights directly, stay as they are), then LoRA (options as for ``lora``) is injected on top.
Saving writes the base weights dequantised and ``quantisation.json`` beside the PEFT adapter; loading quantises
the base again the same way. Merging folds each adapter into its dequantised base and leaves plain Linear
layers (an adapter over a full-precision layer, such as a vision tower's ``nn.MultiheadAttention``, merges as
LoRA's does), so a merged model saves and exports like any other. DoRA is refused (its merge into 4-bit weights is
PEFT's requantising one, not a plain model). On a device without a 4-bit backend the strategy is refused in one
line before any weights load (``check`` at the start of a run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medzoo import MedzooError, RecipeError
from medzoo.plugins.tuning import four_bit
from medzoo.plugins.tuning.four_bit import COMPUTE_DTYPES, QUANT_TYPES, QuantisationPlan
from medzoo.plugins.tuning.lora import OWNER_ATTRIBUTE, LoraTuning, lora_config, merge_lora

QUANT_KEYS = ("quant_type", "double_quant", "compute_dtype")
QUANTISATION_FILE = "quantisation.json"
#: layers left in full precision: the LM head (as in the QLoRA recipe)
SKIPPED_LAYERS = ("lm_head",)
PLAN_ATTRIBUTE = "_medzoo_four_bit"


def _skipped(root: nn.Module, name: str) -> bool:
    parent_name = name.rpartition(".")[0]
    parent = root.get_submodule(parent_name) if parent_name else root
    return name.rpartition(".")[2] in SKIPPED_LAYERS or isinstance(parent, nn.MultiheadAttention)


class QLoraTuning(LoraTuning):
    name = "qlora"

    def __init__(self, **options: Any) -> None:
        self.quantisation = {key: options.pop(key) for key in QUANT_KEYS if key in options}
        super().__init__(**options)

    def plan(self, module_name: str) -> QuantisationPlan:
        """The options as a bitsandbytes request; refuses a value outside what is allowed, naming its key."""
        given = self.quantisation
        for key, allowed in (("quant_type", QUANT_TYPES), ("compute_dtype", COMPUTE_DTYPES)):
            if key in given and given[key] not in allowed:
                raise RecipeError(f"tuning.options.{module_name}.{key}: {given[key]!r}; expected one of {list(allowed)}")
        if not isinstance(given.get("double_quant", True), bool):
            raise RecipeError(f"tuning.options.{module_name}.double_quant: {given['double_quant']!r}; "
                              "expected true or false")
        return QuantisationPlan(**given)

    def check(self, module_name: str, device: torch.device | None = None) -> None:
        if self.options.get("use_dora"):
            raise RecipeError(f"tuning.options.{module_name}.use_dora: true; expected false with qlora (DoRA merges "
                              "into 4-bit weights only by requantising them: use lora with use_dora)")
        lora_config(module_name, dict(self.options))
        self.plan(module_name)
        if device is not None:
            self.check_device(f"tuning.{module_name}", device)

    def check_device(self, key: str, device: torch.device) -> None:
        reason = four_bit.four_bit_backend().unavailable(device)
        if reason is not None:
            raise RecipeError(f"{key}: 'qlora' needs a 4-bit backend and {reason}; expected a device of "
                              f"{', '.join(four_bit.FOUR_BIT_DEVICES)} with bitsandbytes installed, or lora")

    def quantise(self, module: nn.Module, plan: QuantisationPlan, device: torch.device) -> None:
        """Replace the module's Linear layers (but the skipped ones) with 4-bit ones, in place."""
        backend = four_bit.four_bit_backend()
        for name, child in list(module.named_modules()):
            if isinstance(child, nn.Linear) and name and not _skipped(module, name) and not backend.is_quantised(child):
                parent_name, _, attribute = name.rpartition(".")
                parent = module.get_submodule(parent_name) if parent_name else module
                setattr(parent, attribute, backend.quantise(child, plan, device))
        setattr(module, PLAN_ATTRIBUTE, plan)

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        device = four_bit.run_device()
        self.check(module_name, device)
        if getattr(module, PLAN_ATTRIBUTE, None) is None:
            self.quantise(module, self.plan(module_name), device)
        return super().apply(module, module_name)

    def _quantised_layers(self, module: nn.Module) -> dict[str, nn.Module]:
        backend = four_bit.four_bit_backend()
        return {name: child for name, child in module.named_modules() if name and backend.is_quantised(child)}

    def base_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Base weights under the base model's keys, the 4-bit layers' weights dequantised."""
        backend = four_bit.four_bit_backend()
        quantised = self._quantised_layers(module)
        state = {
            key.replace(".base_layer.", "."): value.detach().contiguous()
            for key, value in module.state_dict().items()
            if "lora_" not in key and not any(key.startswith(f"{name}.") for name in quantised)
        }
        for name, layer in quantised.items():
            base_name = name.replace(".base_layer", "")
            state[f"{base_name}.weight"] = backend.dequantise(layer).detach().contiguous()
            if layer.bias is not None:
                state[f"{base_name}.bias"] = layer.bias.detach().contiguous()
        return state

    def save_adapters(self, module: nn.Module, directory: Path, module_name: str, base_model: str | None) -> dict:
        info = super().save_adapters(module, directory, module_name, base_model)
        plan = getattr(module, PLAN_ATTRIBUTE).as_dict()
        (directory / QUANTISATION_FILE).write_text(json.dumps(plan, indent=2))
        return {**info, "quantisation": plan}

    def load_adapters(self, module: nn.Module, directory: Path, module_name: str) -> nn.Module:
        path = directory / QUANTISATION_FILE
        try:
            plan = QuantisationPlan(**json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as error:
            raise MedzooError(f"{path}: not a readable 4-bit quantisation plan ({error!r})") from None
        device = four_bit.run_device()
        self.check_device(f"{path}", device)
        self.quantise(module, plan, device)
        return super().load_adapters(module, directory, module_name)

    def merge_adapters(self, module: nn.Module) -> nn.Module:
        """Each 4-bit layer becomes a plain Linear: its dequantised weight plus its adapter's delta, if any."""
        from peft.tuners.lora import LoraLayer

        backend = four_bit.four_bit_backend()
        for name, child in list(module.named_modules()):
            if isinstance(child, LoraLayer):
                base = child.get_base_layer()
                if not backend.is_quantised(base):
                    continue  # an adapter over a layer kept in full precision: merged as LoRA merges it, below
                weight = backend.dequantise(base)
                weight = weight + child.get_delta_weight("default").to(weight.dtype)
            elif name and backend.is_quantised(child) and not name.endswith(".base_layer"):
                base, weight = child, backend.dequantise(child)
            else:
                continue
            plain = nn.Linear(base.in_features, base.out_features, base.bias is not None,
                              device=weight.device, dtype=weight.dtype)
            plain.weight.data.copy_(weight)
            if base.bias is not None:
                plain.bias.data.copy_(base.bias.data)
            parent_name, _, attribute = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attribute, plain)
        merge_lora(module)  # the adapters over full-precision layers (an nn.MultiheadAttention's)
        for attribute in (PLAN_ATTRIBUTE, OWNER_ATTRIBUTE, "_medzoo_lora_config"):
            if hasattr(module, attribute):
                delattr(module, attribute)
        return module
