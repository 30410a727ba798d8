"""Atomic trainer checkpoints: trainable weights, optimizer, scheduler, RNG states and the data position."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def write_atomically(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data)
    with open(tmp) as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    directory: Path, step: int, model: torch.nn.Module, optimizer, scheduler, info: dict[str, Any], keep: int = 2
) -> Path:
    """Write ``directory/step-N`` through a temporary folder renamed into place, then point ``latest`` at it."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    staging = Path(tempfile.mkdtemp(prefix=".step-", dir=directory))
    save_file(trainable_state(model), str(staging / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        staging / "state.pt",
    )
    (staging / "info.json").write_text(json.dumps({"step": step, **info}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    write_atomically(directory / LATEST, final.name)
    for old in sorted(p for p in directory.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    path = directory / pointer.read_text().strip()
    return path if (path / "info.json").is_file() else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict[str, Any]:
    weights = load_file(str(path / "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    missing = [name for name, p in parameters.items() if p.requires_grad and name not in weights]
    if missing:
        from medzoo.core.errors import TrainingError

        raise TrainingError(f"{path}: checkpoint lacks trainable parameters such as {missing[0]!r}")
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return json.loads((path / "info.json").read_text())
