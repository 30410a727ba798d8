"""Medical VQA benchmarks (VQA-RAD, SLAKE, PathVQA) scored with LLaVA-Med's metric definitions.

Each reads LLaVA-Med's ``test.json`` or the dataset's original test file (see the ``med-vqa`` reader);
the ``synth-*`` variants read the ``medzoo data synth`` layout under the option ``root``.
Prompt: ``<image>\\n{question}`` as LLaVA-Med's ``model_vqa.py`` builds it; greedy decoding with
LLaVA-Med's ``max_new_tokens=1024`` (option ``max_new_tokens`` overrides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from medzoo import Benchmark, BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import (
    option_int,
    predictions_for,
    published_size_warning,
    question_counts,
    synth_root,
)
from medzoo.plugins.benchmarks.metrics.scoring import score_medvqa
from medzoo.plugins.datasets.med_vqa import MedVqaReader


class MedVqaBenchmark(Benchmark):
    """A medical VQA test split. Options: ``path``, ``format``, ``q_lang`` (SLAKE), ``require_images``
    (default true), ``max_new_tokens``; ``root`` for the synthetic variants; ``strip_answers`` (default
    false).

    The references are read in the reader's ``eval`` mode: the answer text exactly as in the file (LLaVA-Med's
    ``run_eval_batch.py`` lower-cases and normalises the raw ``conversations[1].value``), and questions with an
    empty answer or question are kept and scored as the official script scores them. ``strip_answers=true``
    strips the references first (medzoo's former behaviour; no official counterpart)."""

    name = "med-vqa"
    dataset: ClassVar[str] = "medical VQA"
    metric: ClassVar[str] = "medvqa"
    headline_metrics: ClassVar[tuple[str, ...]] = ("open_recall", "closed_accuracy")
    prompt_format: ClassVar[str] = "<image>\n{question}"
    decoding: ClassVar[dict[str, Any]] = {"do_sample": False, "max_new_tokens": 1024}
    #: where the synthetic layout keeps this benchmark's test file (None: not a synthetic benchmark)
    synth_file: ClassVar[str | None] = None
    #: the published test split's question counts (``total``, ``open``, ``closed``); None: nothing to compare
    published_counts: ClassVar[dict[str, int] | None] = None
    split: str = "test"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.decoding = dict(type(self).decoding)
        self.decoding["max_new_tokens"] = option_int(
            options, "max_new_tokens", self.decoding["max_new_tokens"]
        )

    def default_paths(self) -> tuple[Path, Path | None]:
        """(test file, image root) when no path is given."""
        if self.synth_file is None:
            raise DataError(
                f"benchmark {self.name}: give the test file (LLaVA-Med test.json or the {self.dataset} "
                "original release) as a path or the option path=FILE"
            )
        root = synth_root(self.name, self.options)
        return root / self.synth_file, root / "images"

    def reader(self) -> MedVqaReader:
        options = {
            "split": "test",
            "mode": "eval",
            "require_images": self.options.get("require_images", True),
            "strip_answers": self.options.get("strip_answers", False),
            "score_empty_references": self.options.get("score_empty_references", False),
        }
        for key in ("format", "q_lang", "extract_dir"):
            if self.options.get(key) is not None:
                options[key] = self.options[key]
        return MedVqaReader(**options)

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        if path is None:
            default_file, default_images = self.default_paths()
            path = str(default_file)
            image_root = image_root or (str(default_images) if default_images else None)
        image_root = image_root or self.options.get("image_root")
        records, self.last_report = self.reader().read(str(path), image_root=image_root)
        items = [
            BenchmarkItem(
                question_id=record.id,
                question=record.metadata["question"],
                answer=record.metadata["answer"],
                image=record.image,
                answer_type=record.metadata["answer_type"],
                metadata={"question_type": record.metadata.get("question_type", "")},
            )
            for record in records
        ]
        self.question_counts = question_counts(self.last_report, len(items))
        return items

    def size_warning(self, items: list[BenchmarkItem]) -> str | None:
        return published_size_warning(self.name, "test", self.published_counts, self.question_counts, items)

    def prompt(self, item: BenchmarkItem) -> str:
        return self.prompt_format.format(question=item.question)

    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, float]:
        texts, missing = predictions_for(predictions, items)
        result = score_medvqa(texts, [item.answer for item in items], [item.answer_type for item in items])
        result["n_missing"] = len(missing)
        return result


class VqaRadBenchmark(MedVqaBenchmark):
    """VQA-RAD test (451 questions: 179 open, 272 closed)."""

    name = "vqa-rad"
    dataset = "VQA-RAD"
    published_counts = {"total": 451, "open": 179, "closed": 272}


class SlakeBenchmark(MedVqaBenchmark):
    """SLAKE English test (1061 questions: 645 open, 416 closed)."""

    name = "slake"
    dataset = "SLAKE"
    published_counts = {"total": 1061, "open": 645, "closed": 416}


class PathVqaBenchmark(MedVqaBenchmark):
    """PathVQA test (6761 questions: 3370 open, 3391 closed)."""

    name = "pathvqa"
    dataset = "PathVQA"
    published_counts = {"total": 6761, "open": 3370, "closed": 3391}


class SynthVqaRadBenchmark(VqaRadBenchmark):
    """VQA-RAD-shaped synthetic test set (``ROOT/vqa_rad/test.json``)."""

    name = "synth-vqa-rad"
    synth_file = "vqa_rad/test.json"
    published_counts = None


class SynthSlakeBenchmark(SlakeBenchmark):
    """SLAKE-shaped synthetic test set (``ROOT/slake/test.json``, English questions)."""

    name = "synth-slake"
    synth_file = "slake/test.json"
    published_counts = None


class SynthPathVqaBenchmark(PathVqaBenchmark):
    """PathVQA-shaped synthetic test set (``ROOT/pathvqa/qas/test/test_qa.pkl``)."""

    name = "synth-pathvqa"
    synth_file = "pathvqa/qas/test/test_qa.pkl"
    published_counts = None


MEDVQA_BENCHMARKS: tuple[type[MedVqaBenchmark], ...] = (
    VqaRadBenchmark,
    SlakeBenchmark,
    PathVqaBenchmark,
    SynthVqaRadBenchmark,
    SynthSlakeBenchmark,
    SynthPathVqaBenchmark,
)
