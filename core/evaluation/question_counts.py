"""How many of a benchmark file's questions were asked, and why the others were not: nothing is dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medzoo.core.interfaces.benchmark import Benchmark

#: why a question of the file is not asked (``metrics.json`` ``skipped`` keys)
SKIP_KINDS = ("image_missing", "image_corrupt", "bad_record")


@dataclass(frozen=True)
class QuestionCounts:
    """``in_file``: the questions of the benchmark's split in its file; ``skipped``: kind -> count of those not
    asked; ``left_out``: reason -> count of records of another split or language (not part of this benchmark)."""

    in_file: int
    skipped: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def _kinds(self) -> tuple[str, ...]:
        return (*SKIP_KINDS, *sorted(set(self.skipped) - set(SKIP_KINDS)))

    def describe(self, benchmark: str) -> str:
        """``vqa-rad: 3 of 451 questions skipped: image missing 2, image corrupt 1`` (one line)."""
        if self.n_skipped:
            kinds = ", ".join(
                f"{kind.replace('_', ' ')} {self.skipped[kind]}" for kind in self._kinds() if self.skipped.get(kind)
            )
            line = f"{benchmark}: {self.n_skipped} of {self.in_file} questions skipped: {kinds}"
        else:
            line = f"{benchmark}: {self.in_file} questions, none skipped"
        if self.left_out:
            line += "; left out: " + ", ".join(f"{reason} {n}" for reason, n in sorted(self.left_out.items()))
        return line

    def as_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "n_questions_in_file": self.in_file,
            "skipped": {kind: self.skipped.get(kind, 0) for kind in self._kinds()},
        }
        if self.left_out:
            metrics["left_out"] = dict(sorted(self.left_out.items()))
        return metrics


def counts_of(benchmark: Benchmark, n_items: int) -> QuestionCounts:
    """The benchmark's ``question_counts`` after ``load`` (the built-in benchmarks set it), else every item asked."""
    return benchmark.question_counts or QuestionCounts(in_file=n_items)
