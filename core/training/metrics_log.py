"""Per-stage training log: ``metrics.jsonl``, one line per optimizer step (the application draws it: ``medzoo.app.plots``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medzoo.core.file_io.storage import writing
from medzoo.core.file_io.text_files import read_text_file


class MetricsLog:
    def __init__(self, path: Path, resume_after_step: int | None = None) -> None:
        self.path = path
        if resume_after_step is not None and path.exists():
            lines = read_text_file(path, "the stage's training log (JSON lines)").splitlines()
            kept = [line for line in lines if line and json.loads(line)["step"] <= resume_after_step]
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
        text = read_text_file(self.path, "the stage's training log (JSON lines)")
        return [json.loads(line) for line in text.splitlines() if line]
