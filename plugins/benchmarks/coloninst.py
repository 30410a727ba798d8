"""ColonINST benchmarks: classification (CLS), referring expression generation (REG) and
comprehension (REC), and captioning (CAP, scored by medzoo's own protocol), on the seen (val) or unseen (test)
split.

Prompt: the record's own human turn (``<image>\\n{question}``); greedy decoding, 40 new tokens, as the
ColonINST evaluation does. Option ``split``: ``seen`` (val) or ``unseen`` (test, the default).
Real data: give the json file as a path, or ``root=DIR`` holding ``<val|test>/<task>_<val|test>.json``;
the ``synth-*`` variants read ``ROOT/coloninst/<val|test>/<task>_<val|test>.json`` with images in ``ROOT/images``.
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
from medzoo.plugins.benchmarks.metrics.captions import score_captions
from medzoo.plugins.benchmarks.metrics.scoring import clean_coloninst, score_coloninst
from medzoo.plugins.datasets.colon_inst import ColonInstReader

SPLIT_FILES = {"seen": "val", "unseen": "test"}


#: records per task and split as the ColonINST evaluation checks them (seen = val, unseen = test)
PUBLISHED_COUNTS: dict[tuple[str, str], int] = {
    ("cls", "seen"): 8929, ("reg", "seen"): 4874, ("rec", "seen"): 4874,
    ("cls", "unseen"): 45284, ("reg", "unseen"): 37631, ("rec", "unseen"): 37631,
    ("cap", "seen"): 8929, ("cap", "unseen"): 45284,
}


class ColonInstBenchmark(Benchmark):
    """One ColonINST task on one split. Options: ``split`` (seen|unseen), ``path``, ``root``,
    ``require_images`` (default true), ``max_new_tokens``, ``strip_answers`` (default false).

    The references are read in the ``colon-inst`` reader's ``eval`` mode, as IntelliScope's
    ``multimodal_evaluator.py`` reads them: one item per ``gpt`` turn, its text as in the file (the metric
    lower-cases it), paired with the record's ``prediction`` turn of the same rank; empty answers and REC
    answers without a box are scored (0 unless the prediction matches), not dropped. ``strip_answers=true``
    strips the references first (medzoo's former behaviour; no official counterpart)."""

    name = "coloninst"
    task: ClassVar[str] = "cls"
    metric: ClassVar[str] = "coloninst"
    headline_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    prompt_format: ClassVar[str] = "<image>\n{question}"
    decoding: ClassVar[dict[str, Any]] = {"do_sample": False, "max_new_tokens": 40}
    synthetic: ClassVar[bool] = False
    split: str = "unseen"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        split = str(options.get("split", "unseen"))
        if split not in SPLIT_FILES:
            raise DataError(
                f"benchmark {self.name}: option split={split!r}; expected seen (val) or unseen (test)"
            )
        self.split = split
        self.decoding = dict(type(self).decoding)
        self.decoding["max_new_tokens"] = option_int(
            options, "max_new_tokens", self.decoding["max_new_tokens"]
        )

    def default_paths(self) -> tuple[Path, Path | None]:
        """(json file, image root) when no path is given."""
        file_split = SPLIT_FILES[self.split]
        file_name = f"{self.task}_{file_split}.json"
        if self.synthetic:
            root = synth_root(self.name, self.options)
            return root / "coloninst" / file_split / file_name, root / "images"
        if not self.options.get("root"):
            raise DataError(
                f"benchmark {self.name}: give the ColonINST {self.task.upper()} {file_split} json as a path, "
                "or the option root=DIR holding <val|test>/<task>_<val|test>.json"
            )
        root = Path(str(self.options["root"])).expanduser()
        return root / file_split / file_name, None

    def load(self, path: str | None = None, image_root: str | None = None) -> list[BenchmarkItem]:
        path = path or self.options.get("path")
        if path is None:
            default_file, default_images = self.default_paths()
            path = str(default_file)
            image_root = image_root or (str(default_images) if default_images else None)
        image_root = image_root or self.options.get("image_root")
        reader = ColonInstReader(
            task=self.task,
            mode="eval",
            require_images=self.options.get("require_images", True),
            strip_answers=self.options.get("strip_answers", False),
            score_empty_references=self.options.get("score_empty_references", False),
        )
        records, self.last_report = reader.read(str(path), image_root=image_root)
        items = []
        for record in records:
            metadata = {
                "task": self.task,
                "split": self.split,
                "source_id": record.metadata["source_id"],
                "turn": record.metadata["turn"],
            }
            if "prediction" in record.metadata:
                metadata["prediction"] = record.metadata["prediction"]
            items.append(
                BenchmarkItem(
                    question_id=record.id,
                    question=record.metadata["question"],
                    answer=record.metadata["answer"],
                    image=record.image,
                    answer_type="open",
                    metadata=metadata,
                )
            )
        self.question_counts = question_counts(self.last_report, len(items))
        return items

    def size_warning(self, items: list[BenchmarkItem]) -> str | None:
        if self.synthetic:
            return None
        published = {"total": PUBLISHED_COUNTS[(self.task, self.split)]}
        split = f"{self.split} ({SPLIT_FILES[self.split]})"
        return published_size_warning(self.name, split, published, self.question_counts, items)

    def prompt(self, item: BenchmarkItem) -> str:
        return self.prompt_format.format(question=item.question)

    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, float]:
        texts, missing = predictions_for(predictions, items)
        result = score_coloninst(texts, [item.answer for item in items], self.task)
        result["n_missing"] = len(missing)
        return result


class ColonInstClsBenchmark(ColonInstBenchmark):
    """ColonINST classification: exact-match accuracy of the category name."""

    name = "coloninst-cls"
    task = "cls"


class ColonInstRegBenchmark(ColonInstBenchmark):
    """ColonINST referring expression generation: category of a given box, exact-match accuracy."""

    name = "coloninst-reg"
    task = "reg"


class ColonInstRecBenchmark(ColonInstBenchmark):
    """ColonINST referring expression comprehension: the box of a named finding; mean IoU and IoU > 0.5."""

    name = "coloninst-rec"
    task = "rec"
    headline_metrics = ("mean_iou", "acc_at_0_5")


class ColonInstCapBenchmark(ColonInstBenchmark):
    """ColonINST captioning: a paragraph about the image, scored by medzoo's own protocol (IntelliScope publishes
    no CAP metric): corpus BLEU-4 and ROUGE-L as the ``evaluate`` library computes them
    (``medzoo.plugins.benchmarks.metrics.captions``), both sides cleaned as ColonINST cleans its other tasks
    (lower-cased, ``<|endoftext|>`` removed) and stripped. Answers may run to 256 new tokens."""

    name = "coloninst-cap"
    task = "cap"
    metric = "captions"
    headline_metrics = ("bleu_4", "rouge_l")
    decoding = {"do_sample": False, "max_new_tokens": 256}
    #: recorded in metrics.json: these figures compare only with other medzoo CAP figures
    scoring_protocol: ClassVar[str] = ("medzoo's own (IntelliScope publishes no CAP metric): corpus BLEU-4 on "
                                       "sacrebleu 13a tokens (punctuation split off), mean ROUGE-L F on rouge_score "
                                       "tokens (split at every character outside a-z0-9), both sides lower-cased")

    def score(self, predictions: dict[str, str], items: list[BenchmarkItem]) -> dict[str, Any]:
        texts, missing = predictions_for(predictions, items)
        cleaned = [clean_coloninst(text or "").strip() for text in texts]
        result: dict[str, Any] = score_captions(cleaned, [clean_coloninst(item.answer).strip() for item in items])
        result["n_missing"] = len(missing)
        result["scoring_protocol"] = self.scoring_protocol
        return result


class SynthColonInstClsBenchmark(ColonInstClsBenchmark):
    name = "synth-coloninst-cls"
    synthetic = True


class SynthColonInstRegBenchmark(ColonInstRegBenchmark):
    name = "synth-coloninst-reg"
    synthetic = True


class SynthColonInstRecBenchmark(ColonInstRecBenchmark):
    name = "synth-coloninst-rec"
    synthetic = True


class SynthColonInstCapBenchmark(ColonInstCapBenchmark):
    name = "synth-coloninst-cap"
    synthetic = True


COLONINST_BENCHMARKS: tuple[type[ColonInstBenchmark], ...] = (
    ColonInstClsBenchmark,
    ColonInstRegBenchmark,
    ColonInstRecBenchmark,
    ColonInstCapBenchmark,
    SynthColonInstClsBenchmark,
    SynthColonInstRegBenchmark,
    SynthColonInstRecBenchmark,
    SynthColonInstCapBenchmark,
)
