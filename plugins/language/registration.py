"""Registers the built-in language models: the Llama, Mistral, Qwen, Phi and Gemma families and ``hf-causal``
(any other transformers causal LM)."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_language_models(register: Register) -> None:
    from medzoo.plugins.language.gemma import Gemma2LanguageModel, Gemma3LanguageModel
    from medzoo.plugins.language.generic import GenericCausalLanguageModel
    from medzoo.plugins.language.llama import LlamaLanguageModel, VicunaLanguageModel
    from medzoo.plugins.language.llama3 import Llama3LanguageModel
    from medzoo.plugins.language.mistral import MistralLanguageModel
    from medzoo.plugins.language.phi import Phi3LanguageModel, PhiLanguageModel
    from medzoo.plugins.language.qwen import Qwen2LanguageModel, Qwen3LanguageModel

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
    register(
        "qwen2",
        Qwen2LanguageModel,
        description="Qwen2 / Qwen2.5 (HuatuoGPT-Vision's LM), the tokenizer's chat_template (else chatml)",
        hub_ids=("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                 "FreedomIntelligence/HuatuoGPT-Vision-7B"),
        licence="Apache-2.0 (Qwen2.5 3B and 72B: Qwen licence)",
    )
    register(
        "qwen3",
        Qwen3LanguageModel,
        description="Qwen3 dense models, template qwen3 (non-thinking ChatML; Qwen3's own template rewrites history)",
        hub_ids=("Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B"),
        licence="Apache-2.0",
    )
    register(
        "llama3",
        Llama3LanguageModel,
        description="Llama 3 / 3.1 / 3.2 Instruct (LLaVA-Med++'s LM), the tokenizer's chat_template (else llama3)",
        hub_ids=("meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
                 "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"),
        licence="Llama 3 / 3.1 / 3.2 Community Licence",
    )
    register(
        "phi",
        PhiLanguageModel,
        description="Phi-1.5 / Phi-2 (ColonGPT's LM), template colongpt",
        hub_ids=("microsoft/phi-1_5", "microsoft/phi-2"),
        licence="MIT",
    )
    register(
        "phi3",
        Phi3LanguageModel,
        description="Phi-3 / Phi-3.5 / Phi-4-mini Instruct, the tokenizer's chat_template (else phi3)",
        hub_ids=("microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3.5-mini-instruct", "microsoft/Phi-4-mini-instruct"),
        licence="MIT",
    )
    register(
        "gemma2",
        Gemma2LanguageModel,
        description="Gemma 2 instruct, the tokenizer's chat_template (else gemma)",
        hub_ids=("google/gemma-2-2b-it",),
        licence="Gemma Terms of Use",
    )
    register(
        "gemma3",
        Gemma3LanguageModel,
        description="text-only Gemma 3 (MedGemma's LM), the tokenizer's chat_template (else gemma)",
        hub_ids=("google/gemma-3-1b-it", "google/medgemma-27b-text-it"),
        licence="Gemma Terms of Use (MedGemma: Health AI Developer Foundations terms)",
    )
    register(
        "hf-causal",
        GenericCausalLanguageModel,
        description="any transformers causal LM by model_type (AutoConfig/AutoModelForCausalLM), chat_template "
        "else vicuna_v1",
        licence="that of the checkpoint loaded",
    )
