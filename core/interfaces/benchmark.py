"""The benchmark interface: questions with references, a prompt format, decoding settings and a metric."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from medzoo.core.evaluation.question_counts import QuestionCounts
    from medzoo.core.interfaces.dataset import LoadReport


@dataclass
class BenchmarkItem:
    """One question. ``image`` is its first image (or None); a question with several images keeps the others in
    ``extra_images``, in the order the benchmark's prompt places its ``<image>`` placeholders (``images``: all)."""

    question_id: str
    question: str
    answer: str
    image: Path | None = None
    answer_type: str = "open"
    metadata: dict[str, Any] = field(default_factory=dict)
    extra_images: list[Path] = field(default_factory=list)

    @property
    def images(self) -> list[Path]:
        """Every image of the question, the first one first (empty: none)."""
        return [self.image, *self.extra_images] if self.image is not None else []


class Benchmark(ABC):
    """Loads test items, formats prompts and scores predictions.

    Besides the methods, the evaluation reads these attributes (each has a default, so a benchmark declares only
    what it has): ``metric`` and ``headline_metrics`` (class-level, also read from the registered class by the
    leaderboard and model cards), ``split`` (recorded in ``metrics.json``), and after ``load``,
    ``question_counts`` (how many questions of the file were asked, and why the others were not) and
    ``last_report`` (the reader's report of the reference file, printed by ``medzoo score``)."""

    name: str = "benchmark"
    #: greedy unless a benchmark says otherwise
    decoding: dict[str, Any] = {"do_sample": False, "max_new_tokens": 64}
    #: the name of the scoring rule ``score`` applies (e.g. ``medvqa``); ``""``: not named
    metric: ClassVar[str] = ""
    #: the keys of ``score``'s result that boards and model cards show; ``()``: every numeric score
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    #: the split the loaded items belong to (e.g. ``test``, ``unseen``), written to ``metrics.json``;
    #: ``None``: not recorded
    split: str | None = None
    #: set by ``load``: the file's question counts and skips; ``None``: every loaded item was asked
    question_counts: QuestionCounts | None = None
    #: set by ``load``: the reader's report of what it kept and skipped; ``None``: no report
    last_report: LoadReport | None = None

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


def benchmark_class(factory: Any) -> type[Benchmark] | None:
    """The ``Benchmark`` subclass a registered factory is, or None for a factory function (it declares nothing
    before it is called); the leaderboard and model cards read the class-level declarations through it."""
    return factory if isinstance(factory, type) and issubclass(factory, Benchmark) else None
