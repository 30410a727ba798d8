"""Projected wall time of a curriculum from measured per-GPU throughput (data parallel, ``efficiency`` the
fraction of linear scaling kept across GPUs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageWork:
    name: str
    samples: int
    epochs: float
    #: measured samples per second on one GPU at this stage's shapes
    samples_per_s_per_gpu: float


#: the LLaVA-Med curriculum: 500K figure-caption pairs x 1 epoch, then 60K conversations x 3 epochs
LLAVA_MED = (("alignment", 500_000, 1.0), ("instruct", 60_000, 3.0))


def project(stages: list[StageWork], gpus: int = 8, efficiency: float = 1.0) -> dict[str, float]:
    """Seconds per stage and in total."""
    if gpus < 1 or not 0 < efficiency <= 1:
        raise ValueError("gpus must be >= 1 and efficiency in (0, 1]")
    seconds = {}
    for stage in stages:
        if stage.samples_per_s_per_gpu <= 0:
            raise ValueError(f"stage {stage.name}: throughput must be positive")
        seconds[stage.name] = stage.samples * stage.epochs / (stage.samples_per_s_per_gpu * gpus * efficiency)
    seconds["total"] = sum(seconds.values())
    return seconds
