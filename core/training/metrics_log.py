"""Per-stage training log: ``metrics.jsonl`` (one line per step) and a loss-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path, resume_after_step: int | None = None) -> None:
        self.path = path
        if resume_after_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_after_step]
            path.write_text("".join(f"{line}\n" for line in kept))
        elif path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def plot(self, output: Path, title: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        if not records:
            return
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot([r["step"] for r in records], [r["loss"] for r in records], linewidth=1.2)
        axis.set_xlabel("step")
        axis.set_ylabel("loss")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(output, dpi=100)
        plt.close(figure)
