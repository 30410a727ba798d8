"""MedXpertQA-MM: expert-level multiple-choice questions (five options) with one or several images, scored as
MedEvalKit scores them.

Prompt: one ``<image>`` placeholder per image, in the file's order, before MedEvalKit's
``get_multiple_choice_prompt`` text (``Question: ...`` / ``Options:`` with ``A. text`` lines / "Answer with the
option's letter from the given choices directly."): MedEvalKit hands a question's images to the model as a list
beside the prompt, and its model wrappers put them before the text. Answers: MedEvalKit's loader takes the
``<answer>`` spans first (``extract``), then ``judge_multi_choice`` (``protocol=`` picks another parser). Greedy,
MedEvalKit's 8192 new tokens. Accuracy overall and per ``medical_task``, ``body_system`` and ``question_type``.
Source: alibaba-damo-academy/MedEvalKit 9b12e3b ``utils/MedXpertQA/MedXpertQA.py``.
Data: the hub snapshot's ``MM/test.jsonl`` (its folder, or the file) with the ``images`` folder of
``images.zip``; ``synth-medxpertqa-mm`` reads ``ROOT/medxpertqa/MM/test.jsonl``.
"""

from __future__ import annotations

from typing import ClassVar

from medzoo import IMAGE_PLACEHOLDER, BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import synth_root
from medzoo.plugins.benchmarks.multiple_choice.benchmark import MultipleChoiceBenchmark
from medzoo.plugins.benchmarks.multiple_choice.medevalkit import medevalkit_prompt
from medzoo.plugins.benchmarks.multiple_choice.medxpertqa_file import read_medxpertqa

SYNTH_FOLDER = "medxpertqa"


def image_placeholders(item: BenchmarkItem) -> str:
    """One ``<image>`` per image of the item, one per line."""
    return "\n".join([IMAGE_PLACEHOLDER] * len(item.images))


class MedXpertQaMmBenchmark(MultipleChoiceBenchmark):
    """MedXpertQA-MM test (MM/test.jsonl, 2,000 questions, five options, several images), MedEvalKit's judge."""

    name = "medxpertqa-mm"
    #: the MM test split: 2,000 questions (the paper: 4,460 in all = Text 2,450 + MM 2,000 test, 5 + 5 dev)
    published_total = 2000
    medevalkit_reads_answer_tag = True
    synthetic: ClassVar[bool] = False

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        image_root = image_root or self.options.get("image_root")
        if path is None:
            if not self.synthetic:
                raise DataError(f"benchmark {self.name}: give MedXpertQA's MM/test.jsonl (or the snapshot folder of "
                                "TsinghuaC3I/MedXpertQA holding it and images/) as a path or the option path=FILE")
            path = str(synth_root(self.name, self.options) / SYNTH_FOLDER)
        questions, self.last_report = read_medxpertqa(path, image_root, require_images=self.require_images)
        return self.closed_items(questions, lambda question: {"subsets": question.subsets})

    def prompt(self, item: BenchmarkItem) -> str:
        return image_placeholders(item) + medevalkit_prompt(item.question,
                                                            list(item.metadata["choice"].options.values()))


class SynthMedXpertQaMmBenchmark(MedXpertQaMmBenchmark):
    """MedXpertQA-MM-shaped synthetic test set (``ROOT/medxpertqa/MM/test.jsonl``): two images per question."""

    name = "synth-medxpertqa-mm"
    published_total = None
    synthetic = True


MEDXPERTQA_BENCHMARKS: tuple[type[MedXpertQaMmBenchmark], ...] = (MedXpertQaMmBenchmark, SynthMedXpertQaMmBenchmark)
