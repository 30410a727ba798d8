"""``instruct-only``: the paper's ablation that skips biomedical concept alignment (stage 1)."""

from __future__ import annotations

from typing import Any

from medzoo.plugins.curricula.llava_med import LlavaMedCurriculum


class InstructOnlyCurriculum(LlavaMedCurriculum):
    name = "instruct-only"

    def plan(self, stages: list[Any]) -> list[Any]:
        kept = [stage for stage in super().plan(stages) if stage.role != "alignment"]
        for stage in kept:
            if stage.init_from is not None and stage.init_from not in {s.name for s in kept}:
                stage.init_from = None
        return kept
