"""Phi language models: ``phi`` (Phi-1.5 / Phi-2, ColonGPT's LM) and ``phi3`` (Phi-3, Phi-3.5, Phi-4-mini)."""

from __future__ import annotations

from typing import Any

from transformers import Phi3Config, Phi3ForCausalLM, PhiConfig, PhiForCausalLM

from medzoo.plugins.language.hf_causal import TOKENIZER_KEY, HFCausalLanguageModel
from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_name

_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "max_position_embeddings": 512}


class PhiLanguageModel(HFCausalLanguageModel):
    """Phi-1.5 / Phi-2 (base models, no chat template) with ColonGPT's ``colongpt`` template; reads the language
    model of a ColonGPT checkpoint (``colongpt-phi``: same keys; its ``lm_head`` has no bias, so the missing
    bias starts at zero and the logits are the checkpoint's)."""

    component_name = "phi"
    config_class = PhiConfig
    causal_lm_class = PhiForCausalLM
    compatible_model_types = ("colongpt-phi",)
    default_template = "colongpt"
    default_hub_id = "microsoft/phi-1_5"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # partial rotary embeddings (Phi-1.5/2 rotate 32 of each head's 64 dimensions), full multi-head attention
        rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
        return {TOKENIZER_KEY: tiny_tokenizer_name("phi"), **_TINY, "num_key_value_heads": 4, "rope_parameters": rope}


class Phi3LanguageModel(HFCausalLanguageModel):
    """Phi-3 / Phi-3.5 / Phi-4-mini with the instruct tokenizer's chat template (``phi3`` when there is none);
    reads the language model of a ColonGPT Phi-3 checkpoint (``colongpt-phi3``)."""

    component_name = "phi3"
    config_class = Phi3Config
    causal_lm_class = Phi3ForCausalLM
    compatible_model_types = ("colongpt-phi3",)
    default_template = "phi3"
    prefers_chat_template = True
    default_hub_id = "microsoft/Phi-3-mini-4k-instruct"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # Phi-4-mini's quirks: 3/4 of each head rotated, grouped-query attention, tied embeddings, no sliding window
        rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75}
        return {TOKENIZER_KEY: tiny_tokenizer_name("phi3"), **_TINY, "num_key_value_heads": 2, "rope_parameters": rope,
                "tie_word_embeddings": True, "sliding_window": None, "original_max_position_embeddings": 512}
