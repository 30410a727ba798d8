"""Whether a record's answer can be a reference (or a training target): the rule every reader here shares.

A null answer (LLaVA-Med's ``"value": null``, VQA-RAD's ``"answer": null``), an empty or blank one, or one that is
not text (a list, an object, true/false) is no reference: the record is skipped and counted by the reason this
module names, and no metric sees it. A JSON number is an answer written without quotes and is kept as its text.
"""

from __future__ import annotations

from typing import Any

NULL = "answer is null"
EMPTY = "empty answer"
NOT_TEXT_PREFIX = "answer is a "
#: reason -> the kind ``metrics.json`` counts it under (``skipped``)
REFERENCE_SKIP_KINDS = {NULL: "reference_null", EMPTY: "reference_empty"}


def answer_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an answer, or None when it can."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return EMPTY if not value.strip() else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = {bool: "boolean", list: "list", dict: "object"}.get(type(value), type(value).__name__)
        return f"{NOT_TEXT_PREFIX}{kind} (not text)"
    return None


def answer_text(value: Any) -> str:
    """The answer as text: a null one is empty (never the string "None")."""
    return "" if value is None else str(value)


def reference_skip_kind(reason: str) -> str | None:
    """The ``metrics.json`` kind of a reader's skip reason about the answer, or None for other reasons."""
    if reason.startswith(NOT_TEXT_PREFIX):
        return "reference_not_text"
    return REFERENCE_SKIP_KINDS.get(reason)
