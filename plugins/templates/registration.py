"""Registers the built-in conversation templates."""

from __future__ import annotations

from medzoo.core.plugin_system.hookspecs import Register, hookimpl


@hookimpl
def register_conversation_templates(register: Register) -> None:
    from medzoo.plugins.templates.llava_med_v1 import LlavaMedV1Template
    from medzoo.plugins.templates.llava_med_v1_vqa import LlavaMedV1VqaTemplate
    from medzoo.plugins.templates.mistral_instruct import MistralInstructTemplate
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
