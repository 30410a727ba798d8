"""Held-out preference accuracy of a saved model: how often it gives a pair's chosen answer a higher summed
log-probability than the rejected one (the measure DPO is meant to raise; docs/objectives.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def preference_accuracy(model_dir: str | Path, data: str | Path, image_root: str | Path | None = None,
                        reader: str = "llava-preference", batch_size: int = 16, max_length: int = 256) -> dict[str, Any]:
    """``{"pairs", "accuracy" (%), "mean_margin" (nats), "closed_accuracy", "open_accuracy"}`` over the readable
    pairs of ``data`` (records marked ``closed`` in their metadata split the accuracy)."""
    from medzoo.core.inference import processor_for
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.plugin_system.manager import components
    from medzoo.core.training.stage_data import StageData, assemble_batch

    model = MultimodalModel.from_pretrained(str(model_dir)).eval()
    records, _ = components().get("dataset", reader).factory().read(str(data), None if image_root is None else
                                                                    str(image_root), "skip")
    objective = components().get("objective", "dpo").factory(reference_free=True)
    processor = processor_for(model)
    samples = [objective.encode(processor, record, max_length) for record in records]
    stage_data = StageData(samples, [r.image for r in records], [0] * len(records), [len(records)], [1.0],
                           objective=objective)
    margins = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            indices = list(range(start, min(start + batch_size, len(samples))))
            batch = assemble_batch(model, stage_data, indices, model.tokenizer.pad_token_id)
            values = objective.reference_values(model, batch)
            margins.extend((values[:, 0] - values[:, 1]).tolist())
    closed = [bool(record.metadata.get("closed")) for record in records]

    def share(selected: list[float]) -> float | None:
        return round(100.0 * sum(m > 0 for m in selected) / len(selected), 2) if selected else None

    return {
        "pairs": len(margins),
        "accuracy": share(margins),
        "mean_margin": round(sum(margins) / max(1, len(margins)), 4),
        "closed_accuracy": share([m for m, c in zip(margins, closed, strict=True) if c]),
        "open_accuracy": share([m for m, c in zip(margins, closed, strict=True) if not c]),
    }
