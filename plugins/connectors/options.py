"""Checking connector options: one-line RecipeErrors naming the connector, the key, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from medzoo import RecipeError, did_you_mean


def check_known(connector: str, options: dict[str, Any], known: Iterable[str]) -> None:
    """Refuse option keys the connector does not take (a misspelt key would otherwise be ignored)."""
    known = list(known)
    for key in options:
        raise RecipeError(
            f"connector {connector!r}: unknown option {key!r}{did_you_mean(key, known)}; "
            f"expected some of {', '.join(known)}"
        )


def int_option(connector: str, key: str, value: Any, low: int, high: int) -> int:
    """``value`` as an integer from ``low`` to ``high`` (booleans refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RecipeError(
            f"connector {connector!r}: options.{key} must be an integer from {low} to {high}, got {value!r}"
        )
    return value


def bool_option(connector: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(f"connector {connector!r}: options.{key} must be true or false, got {value!r}")
    return value


def divides(connector: str, key: str, heads: int, width_key: str, width: int) -> None:
    """``heads`` (``options.<key>``) must divide ``width``."""
    if width % heads:
        raise RecipeError(
            f"connector {connector!r}: options.{key} {heads} does not divide {width_key} {width}; "
            f"choose a divisor of {width}"
        )
