"""The Mistral language model (LLaVA-Med v1.5 uses Mistral-7B-Instruct-v0.2)."""

from __future__ import annotations

from typing import Any

from transformers import MistralConfig, MistralForCausalLM

from medzoo.plugins.language.hf_causal import HFCausalLanguageModel


class MistralLanguageModel(HFCausalLanguageModel):
    """Mistral with the ``[INST] ... [/INST]`` template; also reads the language model of a LLaVA-Med v1.5
    (``llava_mistral``) checkpoint, leaving its vision tower and projector weights unused."""

    component_name = "mistral"
    config_class = MistralConfig
    causal_lm_class = MistralForCausalLM
    compatible_model_types = ("llava_mistral",)
    default_template = "mistral_instruct"
    default_hub_id = "mistralai/Mistral-7B-Instruct-v0.2"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # grouped-query attention and no sliding window, like Mistral-7B-Instruct-v0.2
        return {**super().tiny_config(), "num_key_value_heads": 2, "sliding_window": None}
