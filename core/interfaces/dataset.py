"""The dataset interface: readers turn files in real formats into conversation records, reporting what they skip."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medzoo.core.errors import DataError
from medzoo.core.interfaces.conversation import Message

BadRecordPolicy = Literal["skip", "error"]


class BadRecord(Exception):
    """A record a reader cannot use: ``reason`` is its skip reason (counted in the LoadReport), ``detail`` what
    was wrong with it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Record:
    """One training or evaluation example: a conversation about zero, one or several images.

    ``image`` is the first image (or None); a record with several images keeps the others in ``extra_images``,
    in the order of the conversation's ``<image>`` placeholders. ``images`` lists them all."""

    id: str
    messages: list[Message]
    image: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra_images: list[Path] = field(default_factory=list)

    @property
    def images(self) -> list[Path]:
        """Every image of the record, the first one first (empty: none)."""
        return [self.image, *self.extra_images] if self.image is not None else []


@dataclass
class LoadReport:
    """What a reader kept and what it skipped, per reason, with example record ids."""

    source: str
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, record_id: str, policy: BadRecordPolicy, detail: str = "") -> None:
        if policy == "error":
            raise DataError(f"{self.source}: record {record_id}: {reason}{': ' + detail if detail else ''}")
        self.skipped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(record_id)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.source}: {self.kept} records"
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))
        return f"{self.source}: {self.kept} records kept, {self.total_skipped} skipped ({reasons})"


class DatasetReader(ABC):
    """Reads one dataset format from a local path (or a hub dataset id where the reader supports it)."""

    name: str = "dataset"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        """Return the valid records and a report of the skipped ones."""
