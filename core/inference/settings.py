"""How an answer is generated: one settings type for evaluation, chat and serving."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingSettings:
    """Token budget, decoding and stop strings of one answer; ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    #: cut the answer at the first of these (the template's own stop strings always apply too)
    stop: tuple[str, ...] = field(default_factory=tuple)
    #: makes sampling repeatable; how it is applied depends on the engine path (see ``InferenceEngine``)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def describe(self) -> str:
        return "greedy" if self.greedy else f"sampled (temperature {self.temperature:g})"
