"""What vLLM's ``LlavaForConditionalGeneration`` can load of an hf-llava export.

Read from vLLM's source (``vllm/model_executor/models/llava.py`` at 35d3c24b, ``layers/activation.py`` at
f64c867c): the vision tower is built only for a CLIP, SigLIP or Pixtral ``vision_config``
(``init_vision_tower_for_llava``), and the projector's and the tower's activations come from ``get_act_fn``,
whose registry has no ``linear``. transformers loads every export; these are the ones vLLM refuses.
"""

from __future__ import annotations

from typing import Any

#: ``vision_config.model_type`` -> tower vLLM's Llava builds for it
VLLM_VISION_MODEL_TYPES = {"clip_vision_model": "CLIP", "siglip_vision_model": "SigLIP", "pixtral": "Pixtral"}
#: the names ``vllm.model_executor.layers.activation.get_act_fn`` accepts (lower-cased)
VLLM_ACTIVATIONS = frozenset({
    "gelu", "gelu_fast", "gelu_new", "gelu_pytorch_tanh", "relu", "relu2", "silu", "quick_gelu",
})


def vllm_refusals(config: dict[str, Any]) -> list[str]:
    """Why vLLM would not load an export with this ``config.json`` (empty: it loads)."""
    reasons = []
    vision = config.get("vision_config", {})
    model_type = vision.get("model_type")
    if model_type not in VLLM_VISION_MODEL_TYPES:
        reasons.append(f"vision_config model_type {model_type!r}: vLLM's Llava builds only CLIP, SigLIP and Pixtral "
                       "towers")
    for field, value in (("projector_hidden_act", config.get("projector_hidden_act")),
                         ("vision_config.hidden_act", vision.get("hidden_act"))):
        if isinstance(value, str) and value.lower() not in VLLM_ACTIVATIONS:
            reasons.append(f"{field} {value!r}: vLLM's get_act_fn has no such activation "
                           f"(it has {', '.join(sorted(VLLM_ACTIVATIONS))})")
    return reasons
