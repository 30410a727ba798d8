"""What a run sends its trackers: the resolved recipe as flat hyperparameters and named scalars."""

from __future__ import annotations

import json
import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

#: ``metrics.jsonl`` keys sent each step, as ``train/<key>`` (then every ``group/name`` key: ``lr/<module>`` and the
#: objective's metrics, e.g. DPO's ``rewards/margin``)
STEP_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "image_tokens", "epoch")
#: ``DONE.json`` keys sent at the end of a stage, as ``stage/<name>/<key>``
STAGE_KEYS = ("steps", "first_loss", "last_loss", "seconds", "samples")


def hyperparameters(recipe: Any) -> dict[str, bool | int | float | str]:
    """The resolved recipe flattened to dotted keys (``stages.instruct.optimizer.lr``), every value a scalar."""
    plain = OmegaConf.to_container(recipe, resolve=True) if isinstance(recipe, DictConfig | ListConfig) else recipe
    flat: dict[str, bool | int | float | str] = {}
    _flatten(plain, "", flat)
    return flat


def _flatten(node: Any, key: str, flat: dict[str, Any]) -> None:
    if isinstance(node, dict) and node:
        for name, value in node.items():
            _flatten(value, f"{key}.{name}" if key else str(name), flat)
    elif isinstance(node, list) and node and key == "stages":
        for index, stage in enumerate(node):
            name = stage.get("name") if isinstance(stage, dict) else None
            _flatten(stage, f"{key}.{name if isinstance(name, str) and name else index}", flat)
    elif isinstance(node, bool | int | float | str):
        flat[key] = node
    else:  # null, lists and empty mappings as their JSON text
        flat[key] = json.dumps(node)


def step_values(record: dict[str, Any]) -> dict[str, float]:
    """One ``metrics.jsonl`` record as ``train/...`` scalars (missing and non-finite values left out)."""
    keys = [*STEP_KEYS, *(key for key in record if "/" in key)]
    return _numbers({f"train/{key}": record.get(key) for key in keys})


def stage_values(summary: dict[str, Any]) -> dict[str, float]:
    """A stage's summary as ``stage/<name>/...`` scalars."""
    return _numbers({f"stage/{summary['stage']}/{key}": summary.get(key) for key in STAGE_KEYS})


def evaluation_values(benchmark: str, metrics: dict[str, Any]) -> dict[str, float]:
    """Every numeric leaf of a benchmark's ``metrics.json`` as ``eval/<benchmark>/...`` (the image ablation's
    ``drop`` and ablated metrics included)."""
    values: dict[str, Any] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, f"{key}/{name}")
        else:
            values[key] = node

    walk(metrics, f"eval/{benchmark}")
    return _numbers(values)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)}
