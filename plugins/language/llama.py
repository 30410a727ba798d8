"""Llama-family language models: ``llama`` (LLaVA-Med v1.0 lineage) and ``vicuna`` (Vicuna v1.5 chat weights)."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM

from medzoo.plugins.language.hf_causal import HFCausalLanguageModel


class LlamaLanguageModel(HFCausalLanguageModel):
    """LLaMA with the LLaVA-Med v1.0 ``### Human / ### Assistant`` template."""

    component_name = "llama"
    config_class = LlamaConfig
    causal_lm_class = LlamaForCausalLM
    #: LLaVA checkpoints built on Llama keep the language model under the usual ``model.*`` / ``lm_head`` keys
    compatible_model_types = ("llava_llama",)
    default_template = "llava_med_v1"
    default_hub_id = "huggyllama/llama-7b"


class VicunaLanguageModel(LlamaLanguageModel):
    """Vicuna: Llama weights fine-tuned for chat, read with the ``USER: / ASSISTANT:`` template."""

    component_name = "vicuna"
    default_template = "vicuna_v1"
    default_hub_id = "lmsys/vicuna-7b-v1.5"
