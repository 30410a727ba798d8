"""Registers the built-in conversation templates."""

from __future__ import annotations

from medzoo import Register, hookimpl


@hookimpl
def register_conversation_templates(register: Register) -> None:
    from medzoo.plugins.templates.chat_template import ChatTemplate
    from medzoo.plugins.templates.chatml import ChatMLTemplate, Qwen3Template, Qwen25Template
    from medzoo.plugins.templates.colongpt import ColonGptTemplate
    from medzoo.plugins.templates.gemma import GemmaTemplate
    from medzoo.plugins.templates.llama3 import Llama3Template
    from medzoo.plugins.templates.llava_med_v1 import LlavaMedV1Template
    from medzoo.plugins.templates.llava_med_v1_vqa import LlavaMedV1VqaTemplate
    from medzoo.plugins.templates.mistral_instruct import MistralInstructTemplate
    from medzoo.plugins.templates.phi3 import Phi3Template
    from medzoo.plugins.templates.plain import PlainTemplate
    from medzoo.plugins.templates.vicuna_v1 import VicunaV1Template

    register("mistral_instruct", MistralInstructTemplate(), description="[INST] q [/INST] a </s> (LLaVA-Med v1.5)")
    register("vicuna_v1", VicunaV1Template(), description="system USER: q ASSISTANT: a</s> (Vicuna v1.1+)")
    register("llava_med_v1", LlavaMedV1Template(), description="### Human: q / ### Assistant: a (LLaVA-Med v1.0 training)")
    register(
        "llava_med_v1_vqa", LlavaMedV1VqaTemplate(),
        description="###Human: q\\n<image>### (LLaVA-Med v1.0 model_vqa_med.py, the paper's VQA prompt)",
    )
    register("plain", PlainTemplate(), description="<image>caption\\n for stage-1 alignment")
    register(
        "chat_template", ChatTemplate(),
        description="the tokenizer's own Jinja chat template, spans derived per turn and checked for drift",
    )
    register("chatml", ChatMLTemplate(), description="<|im_start|>role\\nq<|im_end|> ChatML, no default system")
    register("qwen2_5", Qwen25Template(), description="ChatML with Qwen2.5-Instruct's default system prompt")
    register("qwen3", Qwen3Template(), description="ChatML, each reply after an empty <think> block (Qwen3 non-thinking)")
    register("llama3", Llama3Template(), description="<|start_header_id|>role<|end_header_id|> ... <|eot_id|> (Llama 3)")
    register("phi3", Phi3Template(), description="<|user|>\\nq<|end|>\\n<|assistant|>\\na<|end|> (Phi-3/3.5)")
    register("gemma", GemmaTemplate(), description="<start_of_turn>user|model ... <end_of_turn> (Gemma 2/3)")
    register(
        "colongpt", ColonGptTemplate(),
        description="alias of vicuna_v1 with Phi's <|endoftext|> as EOS (ColonGPT's conv_colongpt)",
    )
