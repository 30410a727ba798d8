"""Qwen language models: ``qwen2`` (Qwen2 and Qwen2.5, e.g. HuatuoGPT-Vision's LM) and ``qwen3``."""

from __future__ import annotations

from typing import Any

from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from medzoo.plugins.language.hf_causal import TOKENIZER_KEY, HFCausalLanguageModel
from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_name

_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 512}


class Qwen2LanguageModel(HFCausalLanguageModel):
    """Qwen2 / Qwen2.5: the instruct tokenizer's ChatML chat template (``chatml`` when there is none); also
    reads the language model of a LLaVA-style Qwen2 checkpoint (``llava_qwen2``, ``llava_qwen``)."""

    component_name = "qwen2"
    config_class = Qwen2Config
    causal_lm_class = Qwen2ForCausalLM
    compatible_model_types = ("llava_qwen2", "llava_qwen")
    default_template = "chatml"
    prefers_chat_template = True
    default_hub_id = "Qwen/Qwen2.5-0.5B-Instruct"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # grouped-query attention and tied embeddings like Qwen2.5-0.5B; sliding-window attention off as shipped
        return {TOKENIZER_KEY: tiny_tokenizer_name("qwen2"), **_TINY, "tie_word_embeddings": True,
                "use_sliding_window": False}


class Qwen3LanguageModel(HFCausalLanguageModel):
    """Qwen3 with the ``qwen3`` template (non-thinking ChatML): Qwen3's own chat template rewrites earlier
    replies (their think blocks go), so it cannot train a multi-turn conversation as one sequence and is only
    used when asked for (where medzoo's drift check refuses it)."""

    component_name = "qwen3"
    config_class = Qwen3Config
    causal_lm_class = Qwen3ForCausalLM
    default_template = "qwen3"
    default_hub_id = "Qwen/Qwen3-0.6B"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # an explicit head_dim wider than hidden/heads (Qwen3-0.6B: 128 vs 64), QK-norm, tied embeddings
        return {TOKENIZER_KEY: tiny_tokenizer_name("qwen3"), **_TINY, "head_dim": 32, "tie_word_embeddings": True}
