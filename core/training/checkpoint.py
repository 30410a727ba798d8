"""Atomic trainer checkpoints: trainable weights, optimizer, scheduler, RNG states and the data position.

Weights and optimizer state go through torch's distributed state-dict API with full (gathered) state dicts, so
one checkpoint format serves one process, DDP and FSDP, and a run can resume on another number of processes.
Under DeepSpeed the engine writes its own partitioned checkpoint into the same folder, which resumes on the same
number of processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from medzoo.core.atomic_writes import save_tensors, save_torch_object, write_atomically, write_file
from medzoo.core.checked_reads import first_line, read_json, read_safetensors, read_text, shape_mismatch
from medzoo.core.errors import TrainingError
from medzoo.core.file_io.storage import StorageError
from medzoo.core.training.distributed import clean_name, gather_options, is_deepspeed, is_sharded

LATEST = "latest"
DEEPSPEED_TAG = "deepspeed"


def _bare_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)


def gather_training_state(
    model: torch.nn.Module, wrapped: torch.nn.Module, optimizer: Any
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Full trainable weights and optimizer state of ``model``, prepared as ``wrapped``, on the main process.

    A collective under FSDP: every process calls it.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    trainable = {clean_name(name) for name, p in model.named_parameters() if p.requires_grad}
    # FSDP gathers whole units (frozen parameters too) whatever the options; torch's ignore_frozen_params then
    # fails on the processes that receive nothing, so the frozen ones are dropped here instead
    sharded = isinstance(wrapped, FullyShardedDataParallel)
    weights = get_model_state_dict(wrapped, options=gather_options(wrapped, ignore_frozen_params=not sharded))
    optim_state = get_optimizer_state_dict(wrapped, _bare_optimizer(optimizer), options=gather_options(wrapped))
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in weights.items() if name in trainable}
    return weights, optim_state


def rng_state() -> dict[str, Any]:
    """Every random generator's state in plain types and tensors (loadable with ``weights_only=True``)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian)]
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])


def load_training_state(path: Path) -> dict[str, Any]:
    """``state.pt`` read with ``weights_only=True``: tensors and plain values only, so a run directory from
    someone else cannot run code on ``--resume``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(
            f"{path}: not a training state medzoo can read safely (tensors and plain values only; "
            f"written by an older medzoo or not by medzoo): {first}"
        ) from None


def save_checkpoint(
    accelerator: Any,
    directory: Path,
    step: int,
    model: torch.nn.Module,
    wrapped: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    info: dict[str, Any],
    keep: int = 2,
) -> None:
    """Write ``directory/step-N`` through a staging folder renamed into place, then point ``latest`` at it.

    Every process calls this. One process, DDP and FSDP: the main process writes the gathered trainable weights
    and optimizer state. DeepSpeed: every process writes its partition through the engine's own checkpoint.
    """
    main = accelerator.is_main_process
    deepspeed = is_deepspeed(accelerator)
    state = None if deepspeed else gather_training_state(model, wrapped, optimizer)  # a collective under FSDP
    staging = directory / f".step-{step:08d}"
    if main:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    accelerator.wait_for_everyone()
    final = directory / f"step-{step:08d}"
    try:
        if deepspeed:
            wrapped.save_checkpoint(str(staging), tag=DEEPSPEED_TAG, save_latest=False, exclude_frozen_parameters=True)
            accelerator.wait_for_everyone()
        elif main:
            save_tensors(state[0], staging / "trainable.safetensors")
        if main:
            engine = "deepspeed" if deepspeed else "torch"
            save_torch_object(
                {"optimizer": None if deepspeed else state[1], "scheduler": scheduler.state_dict(), "rng": rng_state()},
                staging / "state.pt",
            )
            record = {"step": step, "engine": engine, "processes": accelerator.num_processes, **info}
            write_file(staging / "info.json", json.dumps(record, indent=2))
            _publish(directory, staging, final, keep)
    except StorageError as error:  # a full disk: the earlier checkpoints stay as they were, the torn one goes
        shutil.rmtree(staging, ignore_errors=True)
        raise error.moved(staging, final) from None
    accelerator.wait_for_everyone()


def _publish(directory: Path, staging: Path, final: Path, keep: int) -> None:
    """Rename the staged checkpoint into place, point ``latest`` at it and drop all but the ``keep`` newest."""
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    write_atomically(directory / LATEST, final.name)
    for old in sorted(p for p in directory.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint ``directory/latest`` names; ``None`` when there is no pointer (nothing was saved yet).

    A pointer naming a checkpoint that is not there (or not a complete one) is a TrainingError: resuming must
    never silently start over.
    """
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    name = read_text(pointer, TrainingError, "the name of the latest checkpoint folder").strip()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise TrainingError(f"{pointer}: holds {name!r}; expected the name of a step-N checkpoint folder beside it")
    path = directory / name
    if not path.is_dir():
        raise TrainingError(
            f"{pointer}: names checkpoint {name!r}, which is not in {directory}; restore it, or train without "
            f"--resume into a new output folder"
        )
    if not (path / "info.json").is_file():
        raise TrainingError(f"{path / 'info.json'}: missing; the checkpoint {name!r} that {pointer} names is incomplete")
    return path


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """``info.json`` of a checkpoint folder, checked to be an object with an integer ``step``."""
    info_path = path / "info.json"
    info = read_json(info_path, TrainingError, "a checkpoint's info record")
    step = info.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TrainingError(f"{info_path}: key 'step' is {step!r}; expected the checkpoint's step number")
    return info


def load_checkpoint(
    accelerator: Any, path: Path, model: torch.nn.Module, wrapped: torch.nn.Module, optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Restore a checkpoint into the prepared (possibly wrapped, possibly sharded) model; every process reads it."""
    info = read_checkpoint_info(path)
    engine = info.get("engine", "torch")
    deepspeed = is_deepspeed(accelerator)
    if (engine == "deepspeed") != deepspeed:
        raise TrainingError(
            f"{path}: checkpoint written by {engine!r} training; resume with the launch config that wrote it"
        )
    state = load_training_state(path / "state.pt")
    if deepspeed:
        if info.get("processes") != accelerator.num_processes:
            raise TrainingError(
                f"{path}: DeepSpeed partitions were written by {info.get('processes')} processes, not "
                f"{accelerator.num_processes}; resume with {info.get('processes')} processes"
            )
        wrapped.load_checkpoint(
            str(path), tag=DEEPSPEED_TAG, load_module_strict=False, load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
    else:
        weights_path = path / "trainable.safetensors"
        weights = read_safetensors(weights_path, TrainingError, "the checkpoint's trainable weights")
        trainable = {clean_name(name): p for name, p in model.named_parameters() if p.requires_grad}
        missing = [name for name in trainable if name not in weights]
        if missing:
            raise TrainingError(f"{weights_path}: checkpoint lacks trainable parameters such as {missing[0]!r}")
        # sharded parameters have their shard's shape, so shapes are compared on unsharded models only
        mismatch = None if is_sharded(accelerator) else shape_mismatch(
            {name: tuple(p.shape) for name, p in trainable.items()}, {k: tuple(v.shape) for k, v in weights.items()}
        )
        if mismatch:
            key, found, wanted = mismatch
            raise TrainingError(
                f"{weights_path}: tensor {key!r} has shape {list(found)}, the model being trained expects "
                f"{list(wanted)} (a checkpoint of another model?)"
            )
        full = StateDictOptions(full_state_dict=True, strict=False)
        try:
            set_model_state_dict(wrapped, weights, options=full)
        except RuntimeError as error:
            raise TrainingError(f"{weights_path}: weights do not fit the model being trained ({first_line(error)})") from None
        try:
            set_optimizer_state_dict(wrapped, _bare_optimizer(optimizer), state["optimizer"], options=full)
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            raise TrainingError(
                f"{path / 'state.pt'}: optimizer state does not fit the model being trained ({first_line(error)})"
            ) from None
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return info
