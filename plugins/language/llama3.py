"""``llama3``: Llama 3.x (Meta-Llama-3 / Llama-3.1 / Llama-3.2 Instruct; the LM of LLaVA-Med++)."""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

from medzoo.plugins.language.hf_causal import TOKENIZER_KEY, HFCausalLanguageModel
from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_name


class Llama3LanguageModel(HFCausalLanguageModel):
    """Llama 3 with the instruct tokenizer's chat template (``llama3`` when there is none); reads the language
    model of a LLaVA Llama checkpoint (``llava_llama``) as LLaVA-Med++ ships."""

    component_name = "llama3"
    config_class = LlamaConfig
    causal_lm_class = LlamaForCausalLM
    compatible_model_types = ("llava_llama",)
    default_template = "llama3"
    prefers_chat_template = True
    default_hub_id = "meta-llama/Meta-Llama-3-8B-Instruct"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # grouped-query attention and Llama 3.1's scaled RoPE (rope_type llama3)
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 128}
        return {**super().tiny_config(), TOKENIZER_KEY: tiny_tokenizer_name("llama3"), "num_key_value_heads": 2,
                "rope_parameters": rope}
