"""Reading and writing checkpoint weights safely: safetensors first, ``.bin`` only with ``weights_only=True``.

A checkpoint directory holds one of (in order of preference) ``model.safetensors.index.json`` + shards,
``model.safetensors`` (or another single ``*.safetensors``), ``pytorch_model.bin.index.json`` + shards, or
``pytorch_model.bin``. Nothing here executes code from the checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from medzoo.app.interop import InteropError
from medzoo.core.atomic_writes import save_tensors, write_file

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
#: 5 GB shards, as the hub's own checkpoints
DEFAULT_SHARD_BYTES = 5 * 1024**3
#: files fetched from the hub besides the weights
METADATA_PATTERNS = ["*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint_dir(source: str | Path) -> Path:
    """A local directory as is; a hub id (``org/name``) downloaded to the cache, safetensors only when present."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID.match(str(source)):
        raise InteropError(f"{source}: no such directory (and not a hub id of the form org/name)")
    from huggingface_hub import list_repo_files, snapshot_download

    try:
        files = list_repo_files(str(source))
    except Exception:  # offline or unknown repo: fall back to the cache, the download below reports the error
        files = []
    has_safetensors = any(name.endswith(".safetensors") for name in files)
    patterns = [*METADATA_PATTERNS, "*.safetensors"] + ([] if has_safetensors else ["*.bin"])
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns))
    except Exception as error:  # huggingface_hub raises many types (offline, missing repo, gated repo)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InteropError(f"{source}: cannot download the checkpoint: {first}") from None


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise InteropError(f"{directory}: no {CONFIG_FILE}; expected a checkpoint directory")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InteropError(f"{path}: invalid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path}: expected a JSON object")
    return config


def weight_files(directory: Path) -> tuple[list[Path], str]:
    """The weight files of a checkpoint and their kind (``safetensors`` or ``bin``)."""
    for index_name, kind in ((SAFETENSORS_INDEX, "safetensors"), (BIN_INDEX, "bin")):
        index = directory / index_name
        if index.is_file():
            return _indexed_files(index), kind
        single = directory / (SAFETENSORS_SINGLE if kind == "safetensors" else BIN_SINGLE)
        if single.is_file():
            return [single], kind
        if kind == "safetensors":
            candidates = sorted(directory.glob("*.safetensors"))
            if len(candidates) == 1:
                return candidates, kind
    raise InteropError(
        f"{directory}: no weights found; expected {SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, {BIN_SINGLE} or {BIN_INDEX}"
    )


def _indexed_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InteropError(f"{index}: expected a JSON object with a 'weight_map'") from None
    files = [index.parent / name for name in dict.fromkeys(weight_map.values())]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise InteropError(f"{index}: {len(missing)} shard(s) listed in the index are missing (first: {missing[0]})")
    return files


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint on the CPU; a key found in two shards is an error."""
    files, kind = weight_files(directory)
    state: dict[str, torch.Tensor] = {}
    for file in files:
        shard = _read_safetensors(file) if kind == "safetensors" else _read_bin(file)
        duplicated = state.keys() & shard.keys()
        if duplicated:
            raise InteropError(f"{file}: tensor {sorted(duplicated)[0]!r} also appears in another shard")
        state.update(shard)
    index = directory / (SAFETENSORS_INDEX if kind == "safetensors" else BIN_INDEX)
    if index.is_file():
        listed = set(json.loads(index.read_text())["weight_map"])
        absent = sorted(listed - state.keys())
        if absent:
            raise InteropError(f"{index}: {len(absent)} tensor(s) listed but not in the shards (first: {absent[0]})")
    return state


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise InteropError(f"{file}: cannot read safetensors: {str(error).splitlines()[0]}") from None


def _read_bin(file: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # pickles with anything but tensors are refused by weights_only
        raise InteropError(
            f"{file}: cannot read as a plain tensor file (weights_only=True): {str(error).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InteropError(f"{file}: expected a mapping of tensor names to tensors")
    return state


def save_state_dict(
    state: dict[str, torch.Tensor],
    directory: Path,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``model.safetensors``, or numbered shards plus ``model.safetensors.index.json`` when it is larger."""
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        tensor = state[key].detach().contiguous().cpu()
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    metadata = {"format": "pt", **(metadata or {})}
    if len(shards) == 1:
        path = directory / SAFETENSORS_SINGLE
        save_tensors(shards[0], path, metadata=metadata)
        return [path]
    paths = []
    weight_map = {}
    for number, shard in enumerate(shards, start=1):
        path = directory / f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        save_tensors(shard, path, metadata=metadata)
        paths.append(path)
        weight_map.update(dict.fromkeys(shard, path.name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write_file(directory / SAFETENSORS_INDEX, json.dumps(index, indent=2))
    return paths


def safetensors_metadata(directory: Path) -> dict[str, str]:
    """The header metadata of the first safetensors weight file (empty for ``.bin`` checkpoints)."""
    files, kind = weight_files(directory)
    if kind != "safetensors":
        return {}
    with safe_open(str(files[0]), framework="pt", device="cpu") as handle:
        return dict(handle.metadata() or {})
