"""OmniMedVQA (open access): multiple-choice questions over 12 modalities, scored as MedEvalKit scores them.

Prompt: MedEvalKit's ``get_multiple_choice_prompt`` with the options as its loader writes them (``A. text``)
after the ``<image>`` placeholder; answers judged by MedEvalKit's ``judge_multi_choice`` after its
``extract(response, "answer")`` (``utils/OmniMedVQA/OmniMedVQA.py``), unless ``protocol=`` names another
parser. Accuracy overall and per modality, question type and source data set (``subsets``).
Data: the OmniMedVQA folder (``QA_information/Open-access/*.json``, images under it), that folder's
``Open-access`` folder or one of its json files, as a path; ``synth-omnimedvqa`` reads ``ROOT/omnimedvqa`` with
image paths relative to ``ROOT``.
"""

from __future__ import annotations

from typing import ClassVar

from medzoo import BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import synth_root
from medzoo.plugins.benchmarks.multiple_choice.benchmark import MultipleChoiceBenchmark
from medzoo.plugins.benchmarks.multiple_choice.omnimedvqa_file import read_omnimedvqa


class OmniMedVqaBenchmark(MultipleChoiceBenchmark):
    """OmniMedVQA open-access questions, MedEvalKit's prompt and answer judge; accuracy per modality too."""

    name = "omnimedvqa"
    medevalkit_reads_answer_tag = True
    synthetic: ClassVar[bool] = False

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        image_root = image_root or self.options.get("image_root")
        if path is None:
            if not self.synthetic:
                raise DataError(
                    f"benchmark {self.name}: give the OmniMedVQA folder (holding QA_information/Open-access) as a "
                    "path or the option path=DIR"
                )
            root = synth_root(self.name, self.options)
            path, image_root = str(root / "omnimedvqa"), image_root or str(root)
        questions, self.last_report = read_omnimedvqa(path, image_root, require_images=self.require_images)
        return self.closed_items(questions, lambda question: {"subsets": question.subsets})


class SynthOmniMedVqaBenchmark(OmniMedVqaBenchmark):
    """OmniMedVQA-shaped synthetic test set (``ROOT/omnimedvqa``): one question file per image domain."""

    name = "synth-omnimedvqa"
    synthetic = True


OMNIMEDVQA_BENCHMARKS: tuple[type[OmniMedVqaBenchmark], ...] = (OmniMedVqaBenchmark, SynthOmniMedVqaBenchmark)
