"""One-line checks of an objective's options: the option, its value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from medzoo import did_you_mean


def check_number(option: str, value: Any, low: float, low_open: bool = False, high: float | None = None) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low:g}" if low_open else (f"in [{low:g}, {high:g})" if high is not None else f">= {low:g}")
        raise ValueError(f"{option}: {value!r} is out of range; expected a finite number {bound}")


def check_choice(option: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{option}: {value!r} is not allowed{did_you_mean(str(value), list(choices))}; expected one of "
                         f"{', '.join(choices)}")
