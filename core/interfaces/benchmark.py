"""The benchmark interface: questions with references, a prompt format, decoding settings and a metric."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BenchmarkItem:
    question_id: str
    question: str
    answer: str
    image: Path | None = None
    answer_type: str = "open"
    metadata: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    """Loads test items, formats prompts and scores predictions."""

    name: str = "benchmark"
    #: greedy unless a benchmark says otherwise
    decoding: dict[str, Any] = {"do_sample": False, "max_new_tokens": 64}

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        """Read the benchmark's items (``path`` defaults to the benchmark's own data)."""

    def size_warning(self, items: list[BenchmarkItem]) -> str | None:
        """One line when the loaded split differs from the published one (its size or open/closed counts), so
        its scores are not comparable with published rows; ``None`` when it matches or nothing is published."""
        return None

    def prompt(self, item: BenchmarkItem) -> str:
        """The user turn sent to the model (with the ``<image>`` placeholder)."""
        return f"<image>\n{item.question}"

    @abstractmethod
    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, float]:
        """Metrics (percent) for predictions keyed by question id."""
