"""MMMU, the Health & Medicine subjects (Basic Medical Science, Clinical Medicine, Diagnostics and Laboratory
Medicine, Pharmacy, Public Health): the validation split, scored as MedEvalKit scores it.

Prompt: MedEvalKit's ``construct_prompt`` text (``(A) option`` lines, "Answer with the option's letter from the
given choices directly."; open questions: "Answer the question using a single word or phrase."). Images (option
``images``): ``medevalkit`` (default) shows ``image_1`` alone before the prompt and leaves the ``<image N>`` tags
as text, as MedEvalKit's ``eval_val.py`` does (its published figures come from that); ``all`` shows every image,
each placeholder where its first ``<image N>`` tag stood (an image the text never names goes first). Answers
(option ``protocol``): ``medevalkit`` (default; see ``mmmu_parsing.py``: multiple choice by
``parse_multi_choice_response``, an open answer compared character by character as ``eval_val.py`` does),
``mmmu`` (open answers parsed by ``parse_open_response``), ``strict`` (one option letter; an open answer equal to
the reference, case aside). Greedy, MedEvalKit's 8192 new tokens. Accuracy overall and per subject and subfield.
Data: the hub snapshot ``MMMU/MMMU`` (its folder, a subject folder or one validation parquet file);
``synth-mmmu-med`` reads ``ROOT/mmmu``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from medzoo import IMAGE_PLACEHOLDER, Benchmark, BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import (
    option_int,
    predictions_for,
    published_size_warning,
    question_counts,
    synth_root,
)
from medzoo.plugins.benchmarks.multiple_choice.mmmu_file import IMAGE_TAG, MmmuQuestion, read_mmmu
from medzoo.plugins.benchmarks.multiple_choice.mmmu_parsing import (
    mmmu_prompt,
    open_correct,
    parse_choice,
    parse_open,
    run_model_response,
)
from medzoo.plugins.benchmarks.multiple_choice.parsers import strict_letter
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.scoring import accuracy_by_subset

PROTOCOLS = ("medevalkit", "mmmu", "strict")
IMAGE_MODES = ("medevalkit", "all")


def image_numbers(question: MmmuQuestion, mode: str) -> list[int]:
    """The image numbers a question is asked with, in placeholder order: ``medevalkit``: image 1 alone;
    ``all``: the images no tag names, then each named one in the order its first tag appears in the prompt."""
    if mode == "medevalkit":
        return [1] if 1 in question.images else []
    named = list(dict.fromkeys(int(n) for n in IMAGE_TAG.findall(mmmu_prompt(question.question, question.options))))
    named = [number for number in named if number in question.images]
    return [number for number in sorted(question.images) if number not in named] + named


class MmmuMedBenchmark(Benchmark):
    """MMMU Health & Medicine validation (150 questions), MedEvalKit's prompt and MMMU answer parsing."""

    name = "mmmu-med"
    metric: ClassVar[str] = "mmmu"
    headline_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    decoding: ClassVar[dict[str, Any]] = {"do_sample": False, "max_new_tokens": 8192}
    #: 30 validation questions in each of the five subjects (MMMU's validation split: 900 = 30 x 30 subjects)
    published_total: ClassVar[int | None] = 150
    synthetic: ClassVar[bool] = False
    split = "validation"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.protocol = str(options.get("protocol", "medevalkit"))
        if self.protocol not in PROTOCOLS:
            raise DataError(f"benchmark {self.name}: option protocol={self.protocol!r}; expected one of "
                            f"{', '.join(PROTOCOLS)}")
        self.images = str(options.get("images", "medevalkit"))
        if self.images not in IMAGE_MODES:
            raise DataError(f"benchmark {self.name}: option images={self.images!r}; expected one of "
                            f"{', '.join(IMAGE_MODES)}")
        self.decoding = dict(type(self).decoding)
        self.decoding["max_new_tokens"] = option_int(options, "max_new_tokens", self.decoding["max_new_tokens"])
        self.last_report = None
        self.question_counts = None

    @property
    def require_images(self) -> bool:
        return str(self.options.get("require_images", True)).lower() not in ("false", "0", "no")

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        image_root = image_root or self.options.get("image_root")
        if path is None:
            if not self.synthetic:
                raise DataError(f"benchmark {self.name}: give the MMMU/MMMU snapshot folder (or a subject's "
                                "validation parquet) as a path or the option path=DIR")
            path = str(synth_root(self.name, self.options) / "mmmu")
        questions, self.last_report = read_mmmu(path, image_root, require_images=self.require_images)
        items = []
        for question in questions:
            numbers = image_numbers(question, self.images)
            images = [question.images[number] for number in numbers]
            items.append(BenchmarkItem(
                question_id=question.question_id, question=question.question, answer=question.answer,
                image=images[0] if images else None, answer_type="open" if question.is_open else "closed",
                metadata={"options": question.options, "subsets": question.subsets, "image_numbers": numbers},
                extra_images=images[1:],
            ))  # fmt: skip
        self.question_counts = question_counts(self.last_report, len(items))
        return items

    def prompt(self, item: BenchmarkItem) -> str:
        """The prompt with a placeholder per image the item carries (fewer when a one-image policy dropped some)."""
        text = mmmu_prompt(item.question, item.metadata["options"])
        numbers = item.metadata["image_numbers"][: len(item.images)]
        if self.images == "medevalkit":
            return IMAGE_PLACEHOLDER * len(numbers) + text
        leading = []
        for number in numbers:
            tag = f"<image {number}>"
            if tag in text:
                text = text.replace(tag, IMAGE_PLACEHOLDER, 1)
            else:
                leading.append(IMAGE_PLACEHOLDER + "\n")
        return "".join(leading) + text

    def size_warning(self, items: list[BenchmarkItem]) -> str | None:
        if self.synthetic or self.published_total is None:
            return None
        return published_size_warning(self.name, self.split, {"total": self.published_total},
                                      self.question_counts, items)

    def judge(self, response: str, item: BenchmarkItem) -> tuple[bool, bool]:
        """(right, whether a random option was drawn) under the benchmark's protocol."""
        options = item.metadata["options"]
        if item.answer_type == "closed":
            if self.protocol == "strict":
                choice = MultipleChoice({chr(ord("A") + i): text for i, text in enumerate(options)}, item.answer,
                                        item.answer.upper())
                return strict_letter(response, choice) == item.answer.upper(), False
            letter, drawn = parse_choice(run_model_response(response), options, item.question_id)
            return letter == item.answer, drawn
        if self.protocol == "strict":
            return response.strip().lower() == item.answer.strip().lower(), False
        kept = run_model_response(response)
        return open_correct(item.answer, kept if self.protocol == "medevalkit" else parse_open(kept)), False

    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, Any]:
        texts, missing = predictions_for(predictions, items)
        judged = [self.judge(text, item) for text, item in zip(texts, items, strict=True)]
        result = accuracy_by_subset([right for right, _ in judged], [item.metadata["subsets"] for item in items])
        result["n_open"] = sum(1 for item in items if item.answer_type == "open")
        result["n_random_choices"] = sum(1 for _, drawn in judged if drawn)
        result["n_missing"] = len(missing)
        result["answer_protocol"] = self.protocol
        result["image_protocol"] = self.images
        return result


class SynthMmmuMedBenchmark(MmmuMedBenchmark):
    """MMMU-shaped synthetic Health & Medicine set (``ROOT/mmmu/<Subject>/validation-*.parquet``)."""

    name = "synth-mmmu-med"
    published_total = None
    synthetic = True


MMMU_BENCHMARKS: tuple[type[MmmuMedBenchmark], ...] = (MmmuMedBenchmark, SynthMmmuMedBenchmark)
