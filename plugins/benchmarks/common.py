"""Pieces every benchmark family here shares: options, default data paths, missing predictions, skip counts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medzoo import BenchmarkItem, DataError, LoadReport, QuestionCounts
from medzoo.plugins.datasets.reference_answers import reference_skip_kind

#: the readers' skip reasons (``med-vqa``, ``colon-inst``) -> the kinds ``metrics.json`` counts; any other reason
#: is a bad record
SKIP_KIND_OF_REASON = {
    "image not found": "image_missing",
    "no image": "image_missing",
    "unreadable image": "image_corrupt",
}
#: reasons of records that are not this benchmark's questions (another split, another language)
LEFT_OUT_PREFIXES = ("other split", "q_lang ", "other subject")


def synth_root(benchmark: str, options: dict[str, Any]) -> Path:
    """The ``medzoo data synth`` output folder named by the option ``root``."""
    root = options.get("root")
    if not root:
        raise DataError(
            f"benchmark {benchmark}: set the option root=DIR (the folder written by `medzoo data synth --output DIR`)"
        )
    folder = Path(str(root)).expanduser()
    if not folder.is_dir():
        raise DataError(f"benchmark {benchmark}: option root={root!r} is not a folder")
    return folder


def predictions_for(predictions: dict[str, str], items: Sequence[BenchmarkItem]) -> tuple[list[str], list[str]]:
    """(prediction per item, ids of items without one); a missing prediction scores as the empty answer."""
    texts, missing = [], []
    for item in items:
        text = predictions.get(item.question_id)
        if text is None:
            missing.append(item.question_id)
            text = ""
        texts.append(str(text))
    return texts, missing


def option_int(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"benchmark option {key}={value!r}: expected an integer") from None


def question_counts(report: LoadReport, n_items: int) -> QuestionCounts:
    """What a benchmark file held and why questions were not asked, from its reader's report."""
    skipped: dict[str, int] = {}
    left_out: dict[str, int] = {}
    for reason, count in report.skipped.items():
        if reason.startswith(LEFT_OUT_PREFIXES):
            left_out[reason] = left_out.get(reason, 0) + count
        else:
            kind = SKIP_KIND_OF_REASON.get(reason) or reference_skip_kind(reason) or "bad_record"
            skipped[kind] = skipped.get(kind, 0) + count
    return QuestionCounts(in_file=n_items + sum(skipped.values()), skipped=skipped, left_out=left_out)


def published_size_warning(
    benchmark: str, split: str, published: dict[str, int] | None, counts: QuestionCounts | None,
    items: Sequence[BenchmarkItem],
) -> str | None:
    """The one-line warning of :meth:`Benchmark.size_warning`: ``published`` holds ``total`` and, where the
    source gives them, ``open`` / ``closed``; the file's total counts every question of the split in it (asked or
    skipped), the open/closed split is compared when none was skipped."""
    if not published:
        return None
    total = counts.in_file if counts is not None else len(items)
    found = {"total": total}
    skipped = counts.n_skipped if counts is not None else 0
    if "open" in published and not skipped:
        found["open"] = sum(1 for item in items if item.answer_type == "open")
        found["closed"] = sum(1 for item in items if item.answer_type == "closed")
    if all(found[key] == published[key] for key in found):
        return None

    def describe(numbers: dict[str, int]) -> str:
        detail = f" ({numbers['open']} open, {numbers['closed']} closed)" if "open" in numbers else ""
        return f"{numbers['total']} questions{detail}"

    wanted = {key: published[key] for key in found}
    return (f"warning: {benchmark}: the file holds {describe(found)} where the published {split} split has "
            f"{describe(wanted)}; its scores are not comparable with published rows")
