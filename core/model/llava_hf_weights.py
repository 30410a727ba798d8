"""A composed model's tensors under the names llava-hf (transformers' ``LlavaForConditionalGeneration``, vLLM)
gives them: the one name mapping behind ``medzoo export --format hf-llava`` and the vLLM rollouts' weight sync.

- the vision tower: ``vision_tower.`` + the tower model's own keys, with the prefix transformers 5 strips when
  loading (``vision_model.`` for CLIP and SigLIP) put back, as the classic layout (transformers 4.x, vLLM) has it;
- the projector: ``multi_modal_projector.linear_{1,2}.{weight,bias}``;
- the language model: ``language_model.`` + the causal LM's keys (``model.*``, ``lm_head.*``).

The values are the module's own tensors (detached views, nothing copied), so a consumer converts or streams them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.llava_hf import LlavaHfProjector, LlavaHfTower

if TYPE_CHECKING:  # annotations only: the model module is above this one
    from medzoo.core.model.multimodal import MultimodalModel


def tower_state_dict(tower: LlavaHfTower) -> dict[str, Any]:
    """The tower's tensors under the classic llava-hf keys (``vision_tower.vision_model.*`` for CLIP and SigLIP,
    which transformers 5 loads by removing the prefix again)."""
    prefix = classic_prefix(tower.model)
    return {f"vision_tower.{'' if key.startswith(prefix) else prefix}{key}": value
            for key, value in tower.model.state_dict().items()}


def classic_prefix(model: nn.Module) -> str:
    """The key prefix transformers strips when loading ``model``'s class (``vision_model.`` for CLIP in 5.x),
    which the classic layout (transformers 4.x, vLLM) has; empty where there is none."""
    try:
        from transformers.conversion_mapping import extract_weight_conversions_for_model
        from transformers.core_model_loading import PrefixChange
    except ImportError:  # transformers 4.x: the keys already carry it
        return ""
    for conversion in extract_weight_conversions_for_model(model) or ():
        if isinstance(conversion, PrefixChange) and conversion.prefix_to_remove:
            return f"{conversion.prefix_to_remove}."
    return ""


def projector_state_dict(projector: LlavaHfProjector) -> dict[str, torch.Tensor]:
    """The projector's tensors under llava-hf's ``multi_modal_projector.linear_{1,2}.{weight,bias}`` keys."""
    layers = {"linear_1": projector.linear_1, "linear_2": projector.linear_2}
    return {f"multi_modal_projector.{layer}.{part}": tensor
            for layer, (weight, bias) in layers.items() for part, tensor in (("weight", weight), ("bias", bias))}


def llava_hf_tensors(model: MultimodalModel, tower: LlavaHfTower, projector: LlavaHfProjector) -> dict[str, Any]:
    """Every tensor of ``model`` under its llava-hf name, given how llava-hf holds its tower and projector."""
    tensors = tower_state_dict(tower)
    tensors.update(projector_state_dict(projector))
    for key, value in model.language.model.state_dict().items():
        tensors[f"language_model.{key}"] = value
    return tensors


def llava_hf_weights(model: MultimodalModel) -> dict[str, torch.Tensor]:
    """``model``'s tensors under their llava-hf names, as its vision encoder's and connector's
    ``llava_hf_export`` describe them (no probe run), or :class:`ExportRefused` (one line) where llava-hf cannot
    hold the model. Adapters are not merged here: a LoRA layer's tensors keep peft's ``base_layer``/``lora_*`` keys."""
    if model.markup.kind != "placeholder":
        raise ExportRefused("hf-llava cannot hold the <im_start>/<im_patch>/<im_end> image markup (LLaVA-Med v1.0); "
                            "it expands a single <image> token")
    spec = model.spec
    connector_name = spec.get("connector", {}).get("name", type(model.connector).__name__)
    if model.connector.num_output_tokens != model.connector.num_input_tokens:
        raise ExportRefused(f"hf-llava cannot hold the token-reducing {connector_name} connector")
    vision_name = spec.get("vision", {}).get("name", type(model.vision).__name__)
    tower = model.vision.llava_hf_export(vision_name)
    projector = model.connector.llava_hf_export(connector_name)
    return {name: value.detach() for name, value in llava_hf_tensors(model, tower, projector).items()}
