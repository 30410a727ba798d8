"""Per-stage training log: ``metrics.jsonl``, one line per optimizer step (plots: ``tracking.plots``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medzoo.core.storage import writing


class MetricsLog:
    def __init__(self, path: Path, resume_after_step: int | None = None) -> None:
        self.path = path
        if resume_after_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_after_step]
            path.write_text("".join(f"{line}\n" for line in kept))
        elif path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with writing(self.path, len(line.encode())), open(self.path, "a") as handle:
            handle.write(line)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
