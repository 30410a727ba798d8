"""How an answer is generated: one settings type for evaluation, chat and serving."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: the smallest temperature that samples; below it the scaled logits overflow (0 means greedy decoding)
MIN_TEMPERATURE = 1e-2
#: seeds are 0 <= seed < 2**63 (what a ``torch.Generator`` takes on every platform)
SEED_LIMIT = 2**63


class InvalidSettings(ValueError):
    """Sampling settings that cannot be generated with; ``field`` names the offending setting."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


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

    def validate(self) -> SamplingSettings:
        """Raise :class:`InvalidSettings` (one line naming the setting, its value and the allowed range)."""
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise InvalidSettings("max_tokens", f"max_tokens is {self.max_new_tokens!r}; it must be an integer >= 1")
        t = self.temperature
        if not isinstance(t, int | float) or not math.isfinite(t) or (t != 0 and t < MIN_TEMPERATURE):
            raise InvalidSettings("temperature", f"temperature is {t!r}; it must be 0 (greedy) or a finite number "
                                  f">= {MIN_TEMPERATURE:g}")
        p = self.top_p
        if not isinstance(p, int | float) or not math.isfinite(p) or not 0 < p <= 1:
            raise InvalidSettings("top_p", f"top_p is {p!r}; it must be in (0, 1]")
        s = self.seed
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT):
            raise InvalidSettings("seed", f"seed is {s!r}; it must be an integer with 0 <= seed < 2**63")
        return self
