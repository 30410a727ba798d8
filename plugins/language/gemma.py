"""Gemma language models: ``gemma2`` (Gemma 2) and ``gemma3`` (text-only Gemma 3, MedGemma's LM)."""

from __future__ import annotations

import logging
from typing import Any

from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

from medzoo.plugins.language.hf_causal import TOKENIZER_KEY, HFCausalLanguageModel
from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_name

logger = logging.getLogger(__name__)

#: Gemma's quirks kept tiny: head_dim wider than hidden/heads (gemma-2-2b: 256 vs 288), attention scaled by
#: query_pre_attn_scalar, a small sliding window on the local layers
_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 16, "max_position_embeddings": 512}


class Gemma2LanguageModel(HFCausalLanguageModel):
    """Gemma 2 with the instruct tokenizer's chat template (``gemma`` when there is none; no system role)."""

    component_name = "gemma2"
    config_class = Gemma2Config
    causal_lm_class = Gemma2ForCausalLM
    default_template = "gemma"
    prefers_chat_template = True
    default_hub_id = "google/gemma-2-2b-it"

    @classmethod
    def _attention_for(cls, attention: str) -> str:
        # transformers has no SDPA path for Gemma 2 (attention-logit soft-capping): eager, as Google advises
        if attention == "sdpa":
            logger.info("gemma2: attention 'sdpa' is not supported (logit soft-capping); using 'eager'")
            return "eager"
        return attention

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # local (sliding) and global layers alternate; logit soft-capping as shipped
        return {TOKENIZER_KEY: tiny_tokenizer_name("gemma2"), **_TINY, "num_key_value_heads": 2}


class Gemma3LanguageModel(HFCausalLanguageModel):
    """Text-only Gemma 3 (``Gemma3ForCausalLM``: gemma-3-1b, MedGemma 27B text) with the instruct tokenizer's
    chat template (``gemma`` when there is none). The multimodal Gemma 3 / MedGemma 4B checkpoints keep their
    language model inside ``Gemma3ForConditionalGeneration`` and are not read here."""

    component_name = "gemma3"
    config_class = Gemma3TextConfig
    causal_lm_class = Gemma3ForCausalLM
    default_template = "gemma"
    prefers_chat_template = True
    default_hub_id = "google/gemma-3-1b-it"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # one key/value head like gemma-3-1b; one local and one global layer (the real pattern is 5:1)
        return {TOKENIZER_KEY: tiny_tokenizer_name("gemma3"), **_TINY, "num_key_value_heads": 1,
                "layer_types": ["sliding_attention", "full_attention"]}
