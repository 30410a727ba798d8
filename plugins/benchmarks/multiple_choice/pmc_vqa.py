"""PMC-VQA: multiple-choice questions about PubMed Central figures, scored as MedEvalKit scores them.

Prompt: MedEvalKit's ``get_multiple_choice_prompt`` (``Question: ...`` / ``Options:`` with the csv's choices /
"Answer with the option's letter from the given choices directly.") after the ``<image>`` placeholder; greedy
decoding with MedEvalKit's ``MAX_NEW_TOKENS=8192`` (eval.sh; option ``max_new_tokens`` overrides); answers judged
by MedEvalKit's ``judge_multi_choice`` unless ``protocol=`` names another parser (``parsers.py``).
Data: the ``test_2.csv`` of the hub snapshot ``RadGenome/PMC-VQA`` (MedEvalKit's copy) or the original release's
``test.csv`` / ``test_clean.csv`` (``xmcmic/PMC-VQA``), given as a path; ``synth-pmc-vqa`` reads
``ROOT/pmc_vqa/test_2.csv`` with figures in ``ROOT/images``.
"""

from __future__ import annotations

from typing import ClassVar

from medzoo import BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import synth_root
from medzoo.plugins.benchmarks.multiple_choice.benchmark import MultipleChoiceBenchmark
from medzoo.plugins.benchmarks.multiple_choice.pmc_vqa_file import read_pmc_vqa

#: where ``medzoo data synth`` writes the PMC-VQA twin (below its output folder)
SYNTH_FILE = "pmc_vqa/test_2.csv"


class PmcVqaBenchmark(MultipleChoiceBenchmark):
    """PMC-VQA test (test_2.csv, 2,000 questions with four options), MedEvalKit's prompt and answer judge."""

    name = "pmc-vqa"
    #: test_2.csv's rows: the 2,000-question test split as OctoMed/PMC-VQA re-publishes RadGenome/PMC-VQA's (the
    #: original release's test.csv is larger, so it is reported as not comparable)
    published_total = 2000
    synthetic: ClassVar[bool] = False

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        image_root = image_root or self.options.get("image_root")
        if path is None:
            if not self.synthetic:
                raise DataError(
                    f"benchmark {self.name}: give test_2.csv (RadGenome/PMC-VQA) or the original test.csv "
                    "(xmcmic/PMC-VQA) as a path or the option path=FILE"
                )
            root = synth_root(self.name, self.options)
            path, image_root = str(root / SYNTH_FILE), image_root or str(root / "images")
        rows, self.last_report = read_pmc_vqa(path, image_root, require_images=self.require_images)
        return self.closed_items(rows, lambda row: row.extra)


class SynthPmcVqaBenchmark(PmcVqaBenchmark):
    """PMC-VQA-shaped synthetic test set (``ROOT/pmc_vqa/test_2.csv``): four options, answerable from the image."""

    name = "synth-pmc-vqa"
    published_total = None
    synthetic = True


PMC_VQA_BENCHMARKS: tuple[type[PmcVqaBenchmark], ...] = (PmcVqaBenchmark, SynthPmcVqaBenchmark)
