"""GMAI-MMBench: multiple-choice questions over 38 modalities, scored as VLMEvalKit scores them.

Prompt: VLMEvalKit's ``ImageMCQDataset.build_prompt`` (``Hint:`` when the row has one, ``Question:``,
``Options:`` with ``A. text`` lines, "Please select the correct answer from the options above. ") after the
``<image>`` placeholder; answers judged by VLMEvalKit's exact matching (``can_infer``, no LLM judge) unless
``protocol=`` names another parser. Accuracy overall and per modality, clinical VQA task, department and
perceptual granularity (``subsets``). Greedy, 1024 new tokens (medzoo's choice: VLMEvalKit's is per model).
Data: VLMEvalKit's TSV (``GMAI-MMBench_VAL.tsv``) as a path; ``synth-gmai-mmbench`` reads
``ROOT/gmai_mmbench/GMAI-MMBench_VAL.tsv``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from medzoo import BenchmarkItem, DataError
from medzoo.plugins.benchmarks.common import synth_root
from medzoo.plugins.benchmarks.multiple_choice.benchmark import MultipleChoiceBenchmark
from medzoo.plugins.benchmarks.multiple_choice.gmai_file import read_gmai

SYNTH_FILE = "gmai_mmbench/GMAI-MMBench_VAL.tsv"


def vlmevalkit_prompt(question: str, options: dict[str, str], hint: str = "") -> str:
    """The text ``ImageMCQDataset.build_prompt`` builds (open-compass/VLMEvalKit e8e78f0)."""
    prompt = f"Hint: {hint}\n" if hint else ""
    prompt += f"Question: {question}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{letter}. {text}\n" for letter, text in options.items())
        prompt += "Please select the correct answer from the options above. \n"
    return prompt


class GmaiMmBenchBenchmark(MultipleChoiceBenchmark):
    """GMAI-MMBench (VLMEvalKit's TSV), VLMEvalKit's prompt and exact matching; accuracy per modality too."""

    name = "gmai-mmbench"
    default_protocol = "vlmevalkit"
    split = "val"
    decoding: ClassVar[dict[str, Any]] = {"do_sample": False, "max_new_tokens": 1024}
    synthetic: ClassVar[bool] = False

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        image_root = image_root or self.options.get("image_root")
        if path is None:
            if not self.synthetic:
                raise DataError(
                    f"benchmark {self.name}: give VLMEvalKit's GMAI-MMBench tsv (GMAI-MMBench_VAL.tsv) as a path "
                    "or the option path=FILE"
                )
            path = str(synth_root(self.name, self.options) / SYNTH_FILE)
        questions, self.last_report = read_gmai(path, image_root, require_images=self.require_images)
        return self.closed_items(questions, lambda question: {"subsets": question.subsets, "hint": question.hint})

    def prompt(self, item: BenchmarkItem) -> str:
        return "<image>\n" + vlmevalkit_prompt(item.question, item.metadata["choice"].options, item.metadata["hint"])


class SynthGmaiMmBenchBenchmark(GmaiMmBenchBenchmark):
    """GMAI-MMBench-shaped synthetic test set (``ROOT/gmai_mmbench/GMAI-MMBench_VAL.tsv``, base64 images)."""

    name = "synth-gmai-mmbench"
    synthetic = True


GMAI_BENCHMARKS: tuple[type[GmaiMmBenchBenchmark], ...] = (GmaiMmBenchBenchmark, SynthGmaiMmBenchBenchmark)
