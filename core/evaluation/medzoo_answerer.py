"""A medzoo :class:`MultimodalModel` as an answerer: the inference engine answers, the conversation templates
choose the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medzoo.core.evaluation.answer_meta import weights_fingerprint
from medzoo.core.inference import ChatRequest, InferenceEngine, SamplingSettings
from medzoo.core.interfaces.answerer import Answerer, PromptChoice
from medzoo.core.interfaces.benchmark import Benchmark
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.template_lookup import get_template


class MedzooAnswerer(Answerer):
    """Answers with a medzoo model through :class:`InferenceEngine` (one engine per template, made on first use)."""

    def __init__(self, model: MultimodalModel, model_id: str = "model") -> None:
        self.model = model
        self.model_id = model_id
        self._engines: dict[str, InferenceEngine] = {}

    def answer(
        self, requests: Sequence[ChatRequest], settings: SamplingSettings, template: str, batch_size: int
    ) -> list[str]:
        engine = self._engines.get(template)
        if engine is None:
            engine = self._engines[template] = InferenceEngine(self.model, template)
        return [completion.text for completion in engine.answer(requests, settings, batch_size=batch_size)]

    def weights_fingerprint(self) -> str:
        return weights_fingerprint(self.model)

    def prompt_for(self, benchmark: Benchmark, requested: str | None) -> PromptChoice:
        """``requested``, else the evaluation template the model's training template names (LLaVA-Med v1.0
        weights: ``llava_med_v1_vqa``, the paper's prompt), else the model's template; decoding: the template's
        evaluation decoding (v1.0: sampled at 0.7 as ``model_vqa_med.py``), else greedy."""
        trained = get_template(self.model.language.template_name)
        name = str(requested or trained.evaluation_template or trained.name)
        template = get_template(name)
        return PromptChoice(name, dict(template.evaluation_decoding or trained.evaluation_decoding or {}))

    def to_device(self, device: str) -> MedzooAnswerer:
        self.model.to(device)
        self._engines.clear()
        return self


def as_answerer(model: Answerer | MultimodalModel | Any, model_id: str | None = None) -> Answerer:
    """``model`` itself when it is an answerer (``model_id``, when given, renames it), a medzoo model wrapped."""
    if isinstance(model, Answerer):
        if model_id is not None:
            model.model_id = model_id
        return model
    return MedzooAnswerer(model, model_id or "model")
