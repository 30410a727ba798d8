"""Rollouts from medzoo's one inference engine (``InferenceEngine.run_grouped``): each prompt prefilled once, its
KV cache copied to its completions, all rows decoded together by the engine's lean loop; each completion sampled
from its own seeded generator (so a completion does not depend on the batch it was generated in)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medzoo.core.inference.engine import InferenceEngine
from medzoo.core.inference.requests import RowRequest
from medzoo.core.inference.settings import SamplingSettings
from medzoo.core.interfaces.rollout_backend import RolloutBackend, RolloutCompletion, RolloutRequest


class EngineRollouts(RolloutBackend):
    """Generates with the policy itself (no copy of the weights, so there is nothing to synchronise).

    ``batch_rows``: completions decoded together; ``template``: the stage's conversation template (its stop
    strings end a completion).
    """

    name = "engine"

    def __init__(self, template: str | None = None, batch_rows: int = 16) -> None:
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
            raise ValueError(f"batch_rows: {batch_rows!r} is not allowed; expected an integer >= 1")
        self.template = template
        self.batch_rows = batch_rows
        self._engine: InferenceEngine | None = None

    def generate(self, model: Any, requests: Sequence[RolloutRequest]) -> list[list[RolloutCompletion]]:
        engine = self._engine_for(model)
        rows = []
        for request in requests:
            if request.prompt is None:
                raise ValueError(f"rollout request {request.prompt_id}: the engine backend needs the encoded prompt")
            for k in range(request.count):
                settings = SamplingSettings(max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                                            top_p=request.top_p, seed=request.seed + k).validate()
                rows.append(RowRequest(request.prompt, settings))
        was_training = model.training
        completions = []
        try:
            with torch.no_grad():
                for start in range(0, len(rows), self.batch_rows):
                    completions.extend(engine.run_grouped(rows[start : start + self.batch_rows]))
        finally:
            model.train(was_training)
        grouped, position = [], 0
        for request in requests:
            group = completions[position : position + request.count]
            position += request.count
            grouped.append([RolloutCompletion(c.token_ids, c.text, c.finish_reason) for c in group])
        return grouped

    def _engine_for(self, model: Any) -> InferenceEngine:
        if self._engine is None or self._engine.model is not model:
            self._engine = InferenceEngine(model, self.template)
            markup = model.markup
            ids = {markup.placeholder_id, markup.fill_id, markup.start_id, markup.end_id}
            self._engine.suppressed_ids = tuple(sorted(i for i in ids if i is not None))
        else:
            model.eval()
        return self._engine

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "batch_rows": self.batch_rows}
