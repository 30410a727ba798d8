"""What a prepare run did: files fetched / reused / failed, records converted / skipped by reason, and the
failed or skipped units (PMC packages, records) listed in ``<output>/<name>.failures.tsv``."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medzoo.core.atomic_writes import write_atomically, write_json_atomically

#: examples of skipped units kept per reason in the printed summary
EXAMPLES = 3


@dataclass
class Summary:
    name: str
    output: Path
    fetched: int = 0
    reused: int = 0
    failed: int = 0
    converted: int = 0
    skipped: Counter = field(default_factory=Counter)
    #: (unit, "failed" | "skipped", reason) for every unit that could not be used
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, unit: str, reason: str) -> None:
        self.failed += 1
        self.problems.append((unit, "failed", reason))

    def skip(self, unit: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.problems.append((unit, "skipped", reason))

    @property
    def nothing_usable(self) -> bool:
        """Every unit failed: something failed or was skipped, and no record came out usable."""
        return bool(self.failed or self.skipped) and not self.converted

    @property
    def failures_file(self) -> Path:
        return self.output / f"{self.name}.failures.tsv"

    @property
    def report_file(self) -> Path:
        return self.output / f"{self.name}.prepare.json"

    def lines(self) -> list[str]:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))
        lines = [
            f"{self.name}: files fetched {self.fetched}, reused {self.reused}, failed {self.failed}",
            f"{self.name}: records converted {self.converted}, skipped {skipped}" + (f" ({reasons})" if reasons else ""),
        ]
        lines += [f"{self.name}: {note}" for note in self.notes]
        if self.problems:
            lines.append(f"{self.name}: every failed or skipped unit is listed in {self.failures_file}")
        lines += [f"{self.name}: wrote {path}" for path in self.written]
        return lines

    def write(self) -> None:
        """``<name>.prepare.json`` (the counts) and ``<name>.failures.tsv`` (unit, status, reason), atomically."""
        report = {
            "name": self.name, "files": {"fetched": self.fetched, "reused": self.reused, "failed": self.failed},
            "records": {"converted": self.converted, "skipped": dict(sorted(self.skipped.items()))},
            "written": self.written, "notes": self.notes,
            "failures_file": self.failures_file.name if self.problems else None,
        }
        write_json_atomically(self.report_file, report, indent=2)
        if self.problems:
            rows = ["unit\tstatus\treason", *("\t".join(_cell(c) for c in row) for row in self.problems)]
            write_atomically(self.failures_file, "\n".join(rows) + "\n")
        else:
            self.failures_file.unlink(missing_ok=True)


def _cell(text: str) -> str:
    return json.dumps(text)[1:-1] if any(c in text for c in "\t\n\r") else text
