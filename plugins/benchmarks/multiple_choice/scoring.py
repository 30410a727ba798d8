"""Accuracy of multiple-choice answers under one answer protocol: overall and per subset (modality, subject...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medzoo.plugins.benchmarks.multiple_choice.parsers import AnswerProtocol
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice


def percent(right: int, total: int) -> float:
    return 100.0 * right / total if total else 0.0


def score_choices(
    responses: Sequence[str],
    questions: Sequence[MultipleChoice],
    protocol: AnswerProtocol,
    subsets: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """``accuracy`` (percent), ``n``, ``n_right`` and, when questions carry subsets (kind -> name, e.g.
    ``{"modality": "CT"}``), ``subsets``: kind -> name -> ``{"n", "accuracy"}``."""
    right = [protocol.judge(response, question) for response, question in zip(responses, questions, strict=True)]
    return accuracy_by_subset(right, subsets)


def accuracy_by_subset(right: Sequence[bool], subsets: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
    """``accuracy`` (percent), ``n``, ``n_right`` of judged answers and, per subset kind and name, ``n`` and
    ``accuracy`` (``subsets``, when questions carry any)."""
    result: dict[str, Any] = {"accuracy": percent(sum(right), len(right)), "n": len(right), "n_right": sum(right)}
    tallies: dict[str, dict[str, list[int]]] = {}
    for correct, groups in zip(right, subsets or [{}] * len(right), strict=True):
        for kind, name in groups.items():
            tally = tallies.setdefault(kind, {}).setdefault(name, [0, 0])
            tally[0] += correct
            tally[1] += 1
    if tallies:
        result["subsets"] = {
            kind: {name: {"n": total, "accuracy": percent(hits, total)} for name, (hits, total) in sorted(names.items())}
            for kind, names in sorted(tallies.items())
        }
    return result
