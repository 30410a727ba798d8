"""Registers the built-in contenders ``hf-vlm`` and ``openai`` (hook ``register_contenders``)."""

from __future__ import annotations

from medzoo import Register, hookimpl
from medzoo.plugins.contenders.hf_vlm import HfVlmContender
from medzoo.plugins.contenders.openai_chat import OpenAIContender

EXAMPLES = (
    "llava-hf/llava-1.5-7b-hf", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    "Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct", "google/medgemma-4b-it",
    "HuggingFaceTB/SmolVLM-Instruct", "google/paligemma-3b-mix-224",
)


@hookimpl
def register_contenders(register: Register) -> None:
    register(
        "hf-vlm",
        HfVlmContender.from_pretrained,
        description="Any transformers image-text-to-text model (AutoModelForImageTextToText + AutoProcessor, a hub "
                    "id or a local folder), asked with its own chat template",
        examples=EXAMPLES,
    )
    register(
        "openai",
        OpenAIContender.create,
        description="Any model served behind an OpenAI-compatible chat endpoint (vLLM, SGLang, TGI, medzoo serve, a "
                    "hosted API): MODEL is the served model id, --contender-option base_url=http://HOST:PORT/v1",
        examples=("Qwen/Qwen2.5-VL-72B-Instruct", "google/medgemma-27b-it", "gpt-4o"),
    )
