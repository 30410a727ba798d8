"""Registers the built-in language models: ``llama``, ``vicuna`` and ``mistral``."""

from __future__ import annotations

from medzoo.core.plugin_system.hookspecs import Register, hookimpl


@hookimpl
def register_language_models(register: Register) -> None:
    from medzoo.plugins.language.llama import LlamaLanguageModel, VicunaLanguageModel
    from medzoo.plugins.language.mistral import MistralLanguageModel

    register(
        "llama",
        LlamaLanguageModel,
        description="LLaMA causal LM (LLaVA-Med v1.0 base), template llava_med_v1",
        hub_ids=("huggyllama/llama-7b",),
        licence="LLaMA licence (non-commercial research)",
    )
    register(
        "vicuna",
        VicunaLanguageModel,
        description="Vicuna v1.5 (Llama-2 chat fine-tune), template vicuna_v1",
        hub_ids=("lmsys/vicuna-7b-v1.5",),
        licence="Llama 2 Community Licence",
    )
    register(
        "mistral",
        MistralLanguageModel,
        description="Mistral-7B-Instruct-v0.2 (LLaVA-Med v1.5 base), template mistral_instruct",
        hub_ids=("mistralai/Mistral-7B-Instruct-v0.2",),
        licence="Apache-2.0",
    )
