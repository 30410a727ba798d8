"""``hf-causal``: any transformers causal LM through ``AutoConfig`` / ``AutoModelForCausalLM``.

``from_pretrained`` reads any checkpoint whose ``model_type`` transformers maps to a causal LM;
``from_config`` takes the ``model_type`` key plus that config's fields. The decoder block is found
generically (``layers[0]`` of the decoder, else the block transformers keeps whole). The template is the
tokenizer's ``chat_template`` when it has one, else ``vicuna_v1`` (the layout LLaVA trains a plain LM with).
A family plugin exists only where a family needs more (its hand-written template, tiny-config quirks, the
LLaVA model types whose language model it reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from medzoo import RecipeError, did_you_mean
from medzoo.plugins.language.hf_causal import TOKENIZER_KEY, HFCausalLanguageModel
from medzoo.plugins.language.tiny_tokenizer import TINY_TOKENIZER_NAME

MODEL_TYPE_KEY = "model_type"


def causal_lm_model_types() -> tuple[str, ...]:
    """The ``model_type`` values transformers builds a causal LM for."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return tuple(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


class GenericCausalLanguageModel(HFCausalLanguageModel):
    component_name = "hf-causal"
    #: the base classes: the concrete ones follow the checkpoint's or the config's ``model_type``
    config_class = PretrainedConfig
    causal_lm_class = PreTrainedModel
    default_template = "vicuna_v1"
    prefers_chat_template = True

    @classmethod
    def _native_model_types(cls) -> tuple[str, ...]:
        return causal_lm_model_types()

    @classmethod
    def _meta_model(cls, folder: Path | str) -> nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))

    @classmethod
    def _config_class_for(cls, options: dict[str, Any]) -> type:
        from transformers import CONFIG_MAPPING

        model_type = options.pop(MODEL_TYPE_KEY, None)
        known = causal_lm_model_types()
        if model_type not in known:
            given = "is missing" if model_type is None else f"{model_type!r} is not a transformers causal LM"
            raise RecipeError(
                f"language_model {cls.component_name!r}: config key {MODEL_TYPE_KEY!r} {given}"
                f"{did_you_mean(str(model_type), known) if model_type else ''}; expected a transformers model type, "
                "e.g. llama, qwen2, olmo2"
            )
        return CONFIG_MAPPING[model_type]

    @classmethod
    def _causal_lm_class_for(cls, config: Any) -> type:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        # a model type no family plugin covers: OLMo 2 (post-norm blocks, QK-norm)
        return {MODEL_TYPE_KEY: "olmo2", TOKENIZER_KEY: TINY_TOKENIZER_NAME, "hidden_size": 64,
                "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "max_position_embeddings": 512}

    def architecture_config(self) -> dict[str, Any]:
        return {MODEL_TYPE_KEY: self.model.config.model_type, **super().architecture_config()}
