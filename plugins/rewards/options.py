"""Checks of a reward's options: each bad value is a one-line ``ValueError`` naming the option, the value and what
is allowed (the recipe loader prefixes it with the recipe's key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def checked_bool(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{option}: {value!r} is not allowed; expected true or false")
    return value


def checked_choice(option: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{option}: {value!r} is not allowed; expected one of {', '.join(allowed)}")
    return value


def checked_int(option: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{option}: {value!r} is not allowed; expected an integer >= {minimum}")
    return value
