"""LLaVA-Med v1.0 delta weights: ``target = base + delta``, tensor by tensor.

The official delta holds, for every language-model tensor, ``target - base``; the embedding and LM-head
matrices have extra rows for the tokens v1.0 added (``<im_patch>``, ``<im_start>``, ``<im_end>``, a pad token),
stored as plain values since the base has no such rows; tensors the base lacks (the projector) are stored whole.

Sums are computed in float64 and rounded once to the output dtype, which equals adding in the delta's own dtype
(IEEE addition rounds correctly) for the official fp16 deltas. ``make_delta`` picks, per tensor, the narrowest
dtype (target's, float32, float64) whose round trip reproduces the target bit for bit, verifies it, and records the
target dtypes in the safetensors metadata, so ``apply_delta(make_delta(t))`` is exact.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzoo.app.interop import InteropError
from medzoo.app.interop.checkpoint_files import (
    CONFIG_FILE,
    load_state_dict,
    read_config,
    resolve_checkpoint_dir,
    safetensors_metadata,
    save_state_dict,
)
from medzoo.core.atomic_writes import atomic_directory, refuse_overlap, refuse_unless_ours

DELTA_MARKER = "medzoo_delta"
#: written into every checkpoint folder medzoo writes (merged checkpoints, deltas): such a folder may be replaced
CHECKPOINT_MARKER = "medzoo_checkpoint.json"
TARGET_DTYPES_KEY = "medzoo_target_dtypes"
#: non-weight files copied along with deltas and merged checkpoints (tokenizer, configs)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: tensors with one row per vocabulary entry (new tokens add rows)
VOCABULARY_TENSORS = ("embed_tokens.weight", "lm_head.weight")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass
class DeltaReport:
    tensors: int = 0
    #: tensors whose leading rows were summed and trailing rows (new tokens) taken from the delta / target
    extended: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: tensors the base does not have (taken whole)
    delta_only: list[str] = field(default_factory=list)
    #: base tensors the delta does not mention (not part of the target)
    base_only: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"{self.tensors} tensors"]
        for name, (base_rows, rows) in self.extended.items():
            lines.append(f"{name}: rows 0-{base_rows - 1} summed, {rows - base_rows} new-token row(s) kept whole")
        if self.delta_only:
            lines.append(f"not in the base, kept whole ({len(self.delta_only)}): {', '.join(self.delta_only[:4])}"
                         + (" ..." if len(self.delta_only) > 4 else ""))
        if self.base_only:
            lines.append(f"base tensors not in the delta, left out ({len(self.base_only)}): "
                         f"{', '.join(self.base_only[:4])}" + (" ..." if len(self.base_only) > 4 else ""))
        return lines


def apply_delta(
    base: dict[str, torch.Tensor], delta: dict[str, torch.Tensor], target_dtypes: dict[str, str] | None = None
) -> tuple[dict[str, torch.Tensor], DeltaReport]:
    """``target = base + delta`` for every tensor of the delta (see the module docstring)."""
    target_dtypes = target_dtypes or {}
    report = DeltaReport(tensors=len(delta))
    target: dict[str, torch.Tensor] = {}
    for name, change in delta.items():
        dtype = getattr(torch, target_dtypes.get(name, ""), None) or change.dtype
        original = base.get(name)
        if original is None:
            report.delta_only.append(name)
            target[name] = change.to(dtype)
            continue
        _check_shapes(name, original, change)
        if change.shape != original.shape:
            report.extended[name] = (original.shape[0], change.shape[0])
        target[name] = _add_leading(change.to(torch.float64), original, 1).to(dtype)
    report.base_only = sorted(base.keys() - delta.keys())
    return target, report


def make_delta(
    base: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, str], DeltaReport]:
    """The delta whose :func:`apply_delta` reproduces ``target`` exactly, and the target dtype of each tensor."""
    report = DeltaReport(tensors=len(target))
    delta: dict[str, torch.Tensor] = {}
    dtypes: dict[str, str] = {}
    for name, wanted in target.items():
        dtypes[name] = str(wanted.dtype).removeprefix("torch.")
        original = base.get(name)
        if original is None:
            report.delta_only.append(name)
            delta[name] = wanted.clone()
            continue
        _check_shapes(name, original, wanted)
        if wanted.shape != original.shape:
            report.extended[name] = (original.shape[0], wanted.shape[0])
        delta[name] = _exact_difference(name, wanted, original)
    report.base_only = sorted(base.keys() - target.keys())
    return delta, dtypes, report


def _add_leading(values: torch.Tensor, original: torch.Tensor, sign: int) -> torch.Tensor:
    """``values`` (float64) with ``sign * original`` added to its leading rows (all of it when shapes match)."""
    result = values.clone()
    if original.dim() == 0:
        return result + sign * original.to(torch.float64)
    result[: original.shape[0]] += sign * original.to(torch.float64)
    return result


def _exact_difference(name: str, wanted: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    difference = _add_leading(wanted.to(torch.float64), original, -1)
    for dtype in dict.fromkeys((wanted.dtype, torch.float32, torch.float64)):
        candidate = difference.to(dtype)
        rebuilt = _add_leading(candidate.to(torch.float64), original, 1)
        if torch.equal(rebuilt.to(wanted.dtype), wanted):
            return candidate
    raise InteropError(f"{name}: no delta dtype reproduces the target exactly")


def _check_shapes(name: str, original: torch.Tensor, other: torch.Tensor) -> None:
    """Equal shapes, or (embedding and LM head only) the base's rows plus rows for added tokens."""
    if other.shape == original.shape:
        return
    extends = (
        name.endswith(VOCABULARY_TENSORS)
        and original.dim() == other.dim() == 2
        and original.shape[1] == other.shape[1]
        and other.shape[0] > original.shape[0]
    )
    if not extends:
        raise InteropError(
            f"{name}: shape {tuple(other.shape)} does not match the base's {tuple(original.shape)} "
            "(only the embedding and LM head may have extra token rows; is this the right base model?)"
        )


# ---- directories ------------------------------------------------------------------------------------------------
def apply_delta_dirs(base_source: str, delta_source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path,
                                                                    DeltaReport]:
    """Merged tensors, the target's ``config.json`` and the delta directory (which holds the tokenizer)."""
    base_dir = resolve_checkpoint_dir(base_source)
    delta_dir = resolve_checkpoint_dir(delta_source)
    config = read_config(delta_dir)
    metadata = safetensors_metadata(delta_dir)
    target_dtypes = json.loads(metadata.get(TARGET_DTYPES_KEY, "{}"))
    target, report = apply_delta(load_state_dict(base_dir), load_state_dict(delta_dir), target_dtypes)
    config.pop(DELTA_MARKER, None)
    return target, config, delta_dir, report


def write_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any], companion: Path, output: Path,
                     metadata: dict[str, str] | None = None, kind: str = "merged checkpoint") -> None:
    """Write tensors + ``config.json`` in the official layout, copying the companion's tokenizer files.

    The folder appears whole or not at all, with a ``medzoo_checkpoint.json`` marker; an existing ``output`` is
    replaced only when it is empty or holds that marker (medzoo wrote it), anything else is refused.
    """
    with atomic_directory(output, owned_marker=CHECKPOINT_MARKER, what=f"a {kind}") as staging:
        _copy_companion_files(companion, staging)
        save_state_dict(tensors, staging, metadata=metadata)
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (staging / CHECKPOINT_MARKER).write_text(json.dumps({"written_by": "medzoo", "kind": kind}) + "\n")


def refuse_checkpoint_output(output: Path, *sources: str) -> None:
    """Before anything is read: ``output`` overlaps no local source and is empty, missing or medzoo's."""
    for source in sources:
        if Path(source).expanduser().exists():
            refuse_overlap(output, Path(source).expanduser(), "--output")
    refuse_unless_ours(output, CHECKPOINT_MARKER, "a checkpoint")


def make_delta_dirs(base_source: str, target_source: str, output: Path) -> DeltaReport:
    refuse_checkpoint_output(output, base_source, target_source)
    base_dir = resolve_checkpoint_dir(base_source)
    target_dir = resolve_checkpoint_dir(target_source)
    config = read_config(target_dir)
    delta, dtypes, report = make_delta(load_state_dict(base_dir), load_state_dict(target_dir))
    config[DELTA_MARKER] = {"base": str(base_source), "apply_with": "medzoo apply-delta"}
    write_checkpoint(delta, config, target_dir, output, metadata={TARGET_DTYPES_KEY: json.dumps(dtypes)},
                     kind="delta")
    return report


def _copy_companion_files(source: Path, output: Path) -> None:
    skipped = {*WEIGHT_INDEXES, CONFIG_FILE, CHECKPOINT_MARKER}
    for path in source.iterdir():
        if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES) and path.name not in skipped:
            shutil.copy2(path, output / path.name)
