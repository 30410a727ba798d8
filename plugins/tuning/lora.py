"""``lora``: low-rank adapters (peft) injected into the module's linear layers; the base stays frozen.

Options ``use_dora`` (DoRA: weight-decomposed LoRA) and ``use_rslora`` (rank-stabilised scaling) switch on
PEFT's variants of the same adapter; they save, load, merge and export as LoRA does.

Adapters are injected in place (``peft.inject_adapter_in_model``), so module names and state-dict keys of
the base model are unchanged apart from the ``lora_A`` / ``lora_B`` additions; ``merge_lora`` folds them back.

A vision tower without target names in the recipe gets adapters on its attention and MLP projections whatever
its family calls them; an ``nn.MultiheadAttention`` (open_clip's native ViT, whose query / key / value weights
are one ``in_proj_weight``, not a Linear layer) is adapted whole through PEFT's MultiheadAttention LoRA. Options
that would adapt no layer of the module are refused in one line (:meth:`LoraTuning.check_module`, run on a
weightless copy of the model before any weights load).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

from medzoo import MedzooError, RecipeError, TuningStrategy, read_safetensors

ADAPTER_NAME = "default"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
#: PEFT's key prefix for a causal LM's adapters (kept so the language adapter loads with ``PeftModel``)
PEFT_LM_PREFIX = "base_model.model."
#: default LoRA targets per module when the recipe names none
DEFAULT_TARGETS: dict[str, list[str] | str] = {
    "language": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    # transformers' CLIP / SigLIP / DINOv2 (q/k/v/out_proj, fc1/fc2, DINOv2's query/key/value/dense), timm (qkv,
    # proj, fc1/fc2), open_clip's native ViT (c_fc/c_proj; its nn.MultiheadAttention: see vision_targets)
    "vision": ["q_proj", "k_proj", "v_proj", "out_proj", "qkv", "proj", "fc1", "fc2", "query", "key", "value",
               "dense", "c_fc", "c_proj"],
    "connector": ".*",
}
LORA_KEYS = {"r", "alpha", "dropout", "target_modules", "bias", "use_dora", "use_rslora"}
#: LoRA variants that are switches of the same adapter (PEFT's LoraConfig names): DoRA's learnt magnitude per
#: output feature, rank-stabilised scaling alpha / sqrt(r) instead of alpha / r
VARIANT_SWITCHES = ("use_dora", "use_rslora")
#: the layer types PEFT's DoRA adapts (peft/tuners/lora/layer.py: MultiheadAttention and parameter targets refuse it)
DORA_LAYER_TYPES = ("Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D")
#: set on a module by the strategy whose LoRA-format adapters it carries (LoRA and its subclasses share the layers)
OWNER_ATTRIBUTE = "_medzoo_adapter_strategy"


def lora_config(module_name: str, options: dict[str, Any]) -> LoraConfig:
    unknown = set(options) - LORA_KEYS
    if unknown:
        raise RecipeError(
            f"tuning.options.{module_name}: unknown LoRA option(s) {sorted(unknown)}; expected {sorted(LORA_KEYS)}"
        )
    for switch in VARIANT_SWITCHES:
        if not isinstance(options.get(switch, False), bool):
            raise RecipeError(f"tuning.options.{module_name}.{switch}: {options[switch]!r}; expected true or false")
    targets = options.get("target_modules", DEFAULT_TARGETS[module_name])
    if targets == ".*":
        targets = "all-linear-in-module"
    return LoraConfig(
        r=int(options.get("r", 8)),
        lora_alpha=int(options.get("alpha", 16)),
        lora_dropout=float(options.get("dropout", 0.0)),
        target_modules=targets,
        bias=options.get("bias", "none"),
        use_dora=options.get("use_dora", False),
        use_rslora=options.get("use_rslora", False),
    )


def check_dora_targets(module: nn.Module, module_name: str, config: LoraConfig) -> None:
    """Refuse, before any adapter is injected, DoRA on a targeted layer type PEFT's DoRA does not adapt."""
    if not config.use_dora:
        return
    from peft.tuners.tuners_utils import check_target_module_exists

    for name, child in module.named_modules():
        supported = any(cls.__name__ in DORA_LAYER_TYPES for cls in type(child).__mro__)
        if name and not supported and check_target_module_exists(config, name):
            raise RecipeError(
                f"tuning.options.{module_name}.use_dora: true on {name!r} ({type(child).__name__}); PEFT's DoRA "
                f"adapts {', '.join(DORA_LAYER_TYPES)} layers only: expected target_modules naming those, "
                "or use_dora: false"
            )


def _linear_names(module: nn.Module) -> list[str]:
    return [name for name, child in module.named_modules() if isinstance(child, nn.Linear) and name]


def _inside_attention(module: nn.Module, name: str) -> bool:
    parent_name = name.rpartition(".")[0]
    return isinstance(module.get_submodule(parent_name) if parent_name else module, nn.MultiheadAttention)


def vision_targets(module: nn.Module) -> list[str]:
    """The default vision targets as full layer names: the Linear layers named in ``DEFAULT_TARGETS`` and every
    ``nn.MultiheadAttention`` whole (PEFT adapts its packed query / key / value projection and its out_proj)."""
    suffixes = set(DEFAULT_TARGETS["vision"])
    return [
        name for name, child in module.named_modules()
        if name and (isinstance(child, nn.MultiheadAttention) or (
            isinstance(child, nn.Linear) and name.rpartition(".")[2] in suffixes and not _inside_attention(module, name)))
    ]


def check_targets_exist(module: nn.Module, module_name: str, config: LoraConfig, given: Any) -> None:
    """Refuse options whose ``target_modules`` match no layer of ``module`` (an adapter that would train nothing)."""
    from peft.tuners.tuners_utils import check_target_module_exists

    if any(name and check_target_module_exists(config, name) for name, _ in module.named_modules()):
        return
    layers = [name.rpartition(".")[2] for name in _linear_names(module)]
    examples = ", ".join(dict.fromkeys(layers).keys() if layers else ["(none: it has no Linear layer)"])
    key = f"tuning.options.{module_name}.target_modules"
    raise RecipeError(f"{key}: {given!r} names no layer of the {module_name} module ({type(module).__name__}), so "
                      f"LoRA would train nothing; expected names of its layers, e.g. {examples}")


def has_lora(module: nn.Module) -> bool:
    return any(isinstance(child, LoraLayer) for child in module.modules())


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base layer and put the plain base layer back in place (outermost first:
    a MultiheadAttention adapter holds its out_proj's adapter, which its merge folds too)."""
    while (found := next(((n, c) for n, c in module.named_modules() if isinstance(c, LoraLayer)), None)) is not None:
        name, child = found
        if not child.merged:
            child.merge(safe_merge=True)
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attribute, child.get_base_layer())
    for child in module.modules():
        if isinstance(child, nn.MultiheadAttention):
            _restore_attention_parameters(child)
    return module


def _restore_attention_parameters(attention: nn.MultiheadAttention) -> None:
    """PEFT's merged MultiheadAttention holds ``in_proj_weight`` and ``out_proj.weight`` as plain tensors: make
    them parameters again (frozen, as the base's were), so they are saved with the module."""
    for owner, attribute in ((attention, "in_proj_weight"), (attention.out_proj, "weight")):
        value = owner.__dict__.get(attribute)
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            delattr(owner, attribute)
            owner.register_parameter(attribute, nn.Parameter(value.detach(), requires_grad=False))


class LoraTuning(TuningStrategy):
    name = "lora"

    def check(self, module_name: str, device: torch.device | None = None) -> None:
        lora_config(module_name, dict(self.options))

    def module_config(self, module: nn.Module, module_name: str) -> LoraConfig:
        """The PEFT config for ``module`` (default targets resolved to its layers), checked against it."""
        config = lora_config(module_name, dict(self.options))
        given = self.options.get("target_modules", DEFAULT_TARGETS[module_name])
        if config.target_modules == "all-linear-in-module":
            config.target_modules = _linear_names(module)
        elif module_name == "vision" and "target_modules" not in self.options:
            config.target_modules = vision_targets(module)
        check_dora_targets(module, module_name, config)
        check_targets_exist(module, module_name, config, given)
        return config

    def check_module(self, module: nn.Module, module_name: str) -> None:
        if not has_lora(module):
            self.module_config(module, module_name)

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        module.requires_grad_(False)
        if not has_lora(module):
            config = self.module_config(module, module_name)
            inject_adapter_in_model(config, module, adapter_name=ADAPTER_NAME)
            module._medzoo_lora_config = config  # kept for PEFT-format export
            setattr(module, OWNER_ATTRIBUTE, self.name)
        for name, parameter in module.named_parameters():
            if "lora_" in name:
                parameter.requires_grad_(True)
        return module

    def has_adapters(self, module: nn.Module) -> bool:
        # LoRA layers injected without an owner named (by hand, or by an older medzoo) are plain LoRA's
        return has_lora(module) and getattr(module, OWNER_ATTRIBUTE, LoraTuning.name) == self.name

    def base_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Weights without LoRA tensors, with peft's ``base_layer.`` infix removed."""
        return {
            key.replace(".base_layer.", "."): value.detach().contiguous()
            for key, value in module.state_dict().items()
            if "lora_" not in key
        }

    def save_adapters(self, module: nn.Module, directory: Path, module_name: str, base_model: str | None) -> dict:
        """PEFT layout: ``adapter_model.safetensors`` + ``adapter_config.json`` (a causal-LM adapter for the LM)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = module._medzoo_lora_config
        state = get_peft_model_state_dict(module, adapter_name=ADAPTER_NAME)
        prefix = PEFT_LM_PREFIX if module_name == "language" else ""
        save_file({prefix + k: v.contiguous() for k, v in state.items()}, str(directory / ADAPTER_WEIGHTS))
        config_dict = config.to_dict()
        targets = config.target_modules
        config_dict["target_modules"] = sorted(targets) if isinstance(targets, set) else targets
        if module_name == "language":
            config_dict["task_type"] = "CAUSAL_LM"
            # the base it was trained on: the recipe's hub id or folder, else where the weights were loaded from
            # (None for a random init: then only the model directory holds the base; `medzoo export --no-merge`
            # writes one PEFT loads and points its adapter/ at it)
            loaded_from = getattr(getattr(module, "config", None), "name_or_path", "") or None
            config_dict["base_model_name_or_path"] = base_model or loaded_from
        (directory / ADAPTER_CONFIG).write_text(json.dumps(config_dict, indent=2, default=str))
        return {"r": config.r, "alpha": config.lora_alpha, **{k: True for k in VARIANT_SWITCHES if getattr(config, k)}}

    def load_adapters(self, module: nn.Module, directory: Path, module_name: str) -> nn.Module:
        config_path = directory / ADAPTER_CONFIG
        try:
            config_dict = json.loads(config_path.read_text())
            config = LoraConfig(
                r=config_dict["r"],
                lora_alpha=config_dict["lora_alpha"],
                lora_dropout=config_dict.get("lora_dropout", 0.0),
                target_modules=config_dict["target_modules"],
                bias=config_dict.get("bias", "none"),
                use_dora=bool(config_dict.get("use_dora", False)),
                use_rslora=bool(config_dict.get("use_rslora", False)),
            )
        except (OSError, json.JSONDecodeError, KeyError) as error:
            raise MedzooError(f"{config_path}: not a readable LoRA adapter config ({error!r})") from None
        state = read_safetensors(directory / ADAPTER_WEIGHTS, MedzooError, "the LoRA adapter weights saved with the model")
        inject_adapter_in_model(config, module, adapter_name=ADAPTER_NAME)
        module._medzoo_lora_config = config
        setattr(module, OWNER_ATTRIBUTE, self.name)
        state = {k.removeprefix(PEFT_LM_PREFIX): v for k, v in state.items()}
        result = set_peft_model_state_dict(module, state, adapter_name=ADAPTER_NAME)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise MedzooError(f"{directory}: adapter weights do not fit the model: {unexpected[:3]}")
        return module

    def merge_adapters(self, module: nn.Module) -> nn.Module:
        return merge_lora(module)
