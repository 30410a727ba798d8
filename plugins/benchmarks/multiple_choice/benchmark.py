"""What every multiple-choice benchmark shares: the answer protocol option, the prompt, scoring, counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from medzoo import Benchmark, BenchmarkItem, LoadReport
from medzoo.plugins.benchmarks.common import (
    option_int,
    predictions_for,
    published_size_warning,
    question_counts,
)
from medzoo.plugins.benchmarks.multiple_choice.medevalkit import between_tags, medevalkit_prompt
from medzoo.plugins.benchmarks.multiple_choice.parsers import AnswerProtocol, answer_protocol
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.scoring import score_choices


class MultipleChoiceBenchmark(Benchmark):
    """A multiple-choice benchmark. Options: ``protocol`` (the answer parser, default the benchmark's harness),
    ``max_new_tokens``. Each item carries its question as ``metadata["choice"]`` (a :class:`MultipleChoice`) and
    its subsets as ``metadata["subsets"]``; ``score`` reports ``accuracy`` overall and per subset, and the
    protocol it used (``answer_protocol``)."""

    metric: ClassVar[str] = "multiple-choice"
    headline_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    #: the answer protocol of the harness whose figures are published
    default_protocol: ClassVar[str] = "medevalkit"
    #: the published split's size (None: nothing to compare)
    published_total: ClassVar[int | None] = None
    synthetic: ClassVar[bool] = False
    #: MedEvalKit's loader takes the ``<answer>`` spans before judging (OmniMedVQA, MedXpertQA; not PMC-VQA)
    medevalkit_reads_answer_tag: ClassVar[bool] = False
    decoding: ClassVar[dict[str, Any]] = {"do_sample": False, "max_new_tokens": 8192}
    split: str = "test"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.protocol: AnswerProtocol = answer_protocol(str(options.get("protocol", self.default_protocol)), self.name)
        self.decoding = dict(type(self).decoding)
        self.decoding["max_new_tokens"] = option_int(options, "max_new_tokens", self.decoding["max_new_tokens"])
        self.last_report: LoadReport | None = None
        self.question_counts = None

    @property
    def require_images(self) -> bool:
        """The option ``require_images`` (default true): a question whose image resolves nowhere is skipped."""
        return str(self.options.get("require_images", True)).lower() not in ("false", "0", "no")

    def closed_items(self, questions: Sequence[Any], metadata: Callable[[Any], dict[str, Any]]) -> list[BenchmarkItem]:
        """One closed item per question read (its ``question_id``, ``question``, ``image`` - or ``images``, several
        - and ``choice``), with ``metadata(question)`` beside the choice; counts what was read against
        ``last_report``."""
        items = []
        for question in questions:
            images = list(getattr(question, "images", None) or ([question.image] if question.image else []))
            items.append(BenchmarkItem(
                question_id=question.question_id,
                question=question.question,
                answer=question.choice.answer_letter,
                image=images[0] if images else None,
                answer_type="closed",
                metadata={"choice": question.choice, **metadata(question)},
                extra_images=images[1:],
            ))
        self.question_counts = question_counts(self.last_report, len(items))
        return items

    def prompt(self, item: BenchmarkItem) -> str:
        """MedEvalKit's prompt after the image placeholder (a benchmark of another harness overrides it)."""
        return "<image>" + medevalkit_prompt(item.question, list(item.metadata["choice"].options.values()))

    def size_warning(self, items: list[BenchmarkItem]) -> str | None:
        if self.synthetic or self.published_total is None:
            return None
        return published_size_warning(
            self.name, self.split, {"total": self.published_total}, self.question_counts, items
        )

    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, Any]:
        texts, missing = predictions_for(predictions, items)
        if self.medevalkit_reads_answer_tag and self.protocol.name == "medevalkit":
            texts = [between_tags(text, "answer") for text in texts]
        questions: list[MultipleChoice] = [item.metadata["choice"] for item in items]
        subsets = [item.metadata.get("subsets", {}) for item in items]
        result = score_choices(texts, questions, self.protocol, subsets)
        result["n_missing"] = len(missing)
        result["answer_protocol"] = self.protocol.name
        return result
