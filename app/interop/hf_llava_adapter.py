"""The language model's LoRA adapter as a PEFT adapter of the exported ``LlavaForConditionalGeneration``.

``medzoo export --no-merge`` writes the base weights (without the adapter) and ``adapter/``
(``adapter_config.json`` + ``adapter_model.safetensors``) that ``peft.PeftModel.from_pretrained(llava,
"EXPORT/adapter")`` loads: the adapter's module names are those of transformers' Llava model
(``model.language_model.layers.N...`` for the causal LM's ``model.layers.N...``, ``lm_head`` unchanged), its
``target_modules`` the full names of the adapted layers (so the vision tower's ``q_proj``/``v_proj`` get none),
and ``base_model_name_or_path`` the export folder. Adapters of the vision encoder or the connector have no place
there and are merged into the base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medzoo.core.atomic_writes import save_tensors, write_file
from medzoo.core.errors import ExportRefused
from medzoo.core.model.adapters import adapted_modules
from medzoo.core.model.multimodal import MultimodalModel

ADAPTER_DIR = "adapter"
#: the causal LM's module prefixes -> those of transformers' LlavaForConditionalGeneration
LLAVA_LANGUAGE_PREFIXES = {"model.": "model.language_model.", "lm_head": "lm_head"}
#: PEFT's key prefix for the wrapped model (``PeftModel.base_model.model``)
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LanguageAdapter:
    """A LoRA adapter renamed for llava-hf: its PEFT config and tensors."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def save(self, directory: Path, base_model: str, dtype: torch.dtype) -> list[str]:
        """Write the PEFT files into ``directory`` (created); returns their names."""
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors({key: value.detach().to(dtype).contiguous() for key, value in self.tensors.items()},
                     directory / "adapter_model.safetensors")
        config = {**self.config, "base_model_name_or_path": base_model}
        write_file(directory / "adapter_config.json", json.dumps(config, indent=2, default=str) + "\n")
        return ["adapter_model.safetensors", "adapter_config.json"]


def llava_name(name: str) -> str:
    """A causal-LM module or tensor name as it is inside LlavaForConditionalGeneration."""
    for old, new in LLAVA_LANGUAGE_PREFIXES.items():
        if name == old or name.startswith(old if old.endswith(".") else f"{old}."):
            return new + name[len(old):]
    raise ExportRefused(f"hf-llava cannot hold the LoRA adapter on {name!r}: llava-hf's language model holds "
                        "model.* and lm_head")


def take_language_adapter(model: MultimodalModel) -> LanguageAdapter | None:
    """The language model's LoRA adapter renamed for llava-hf, taken off ``model`` (its base layers put back
    unmerged, in place); ``None`` when it has none. Raises :class:`ExportRefused` for another strategy's."""
    found = adapted_modules(model).get("language")
    if found is None:
        return None
    strategy_name, _, module = found
    if strategy_name != "lora":
        raise ExportRefused(f"--no-merge writes LoRA adapters in PEFT format; the language model's adapters are "
                            f"{strategy_name!r}'s (export without --no-merge to merge them)")
    from peft.tuners.lora import LoraLayer
    from peft.utils import get_peft_model_state_dict

    config = module._medzoo_lora_config.to_dict()  # set by LoraTuning.apply / load_adapters
    layers = [name for name, child in module.named_modules() if isinstance(child, LoraLayer)]
    state = get_peft_model_state_dict(module, adapter_name="default")
    config.update(target_modules=sorted(llava_name(name) for name in layers), task_type="CAUSAL_LM")
    config.pop("base_model_name_or_path", None)
    tensors = {PEFT_PREFIX + llava_name(key): value for key, value in state.items()}
    unload(module, layers)
    return LanguageAdapter(config, tensors)


def unload(module: nn.Module, layers: list[str]) -> None:
    """Put each LoRA layer's base layer back in its place, the adapter dropped (not merged)."""
    for name in layers:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, module.get_submodule(name).get_base_layer())
