"""Export a tiled medzoo model (AnyRes; core/model/anyres.py) to the llava-hf LLaVA-NeXT layout that
transformers' ``LlavaNextForConditionalGeneration`` and ``LlavaNextProcessor`` load.

The tower, projector and language model are written as the hf-llava export writes them (classic keys, shards,
tokenizer and chat template); on top come the learned ``image_newline``, a ``llava_next`` config with the
recipe's ``image_grid_pinpoints``, and ``LlavaNextImageProcessor`` / ``LlavaNextProcessor`` settings. LLaVA-NeXT
always unpads and always closes feature rows with the newline, and has no token cap, so a model tiled otherwise
is refused in one line, as is a connector whose tokens per crop are not the tower's patch grid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from medzoo.app.interop.checkpoint_files import DEFAULT_SHARD_BYTES
from medzoo.app.interop.hf_llava_export import (
    EXPORT_MARKER,
    ExportReport,
    image_processor_config,
    llava_parts,
    write_hf_llava,
)
from medzoo.core.atomic_writes import atomic_directory, refuse_unless_ours
from medzoo.core.dtypes import torch_dtype
from medzoo.core.errors import ExportRefused
from medzoo.core.model.anyres import NEWLINE
from medzoo.core.model.multimodal import MultimodalModel

FORMAT = "llava-next"
NEWLINE_FILE = "image_newline.safetensors"
SINGLE_SHARD = "model-00001-of-00001.safetensors"
INDEX = "model.safetensors.index.json"
KEY = "model.vision.options"


def check_llava_next_exportable(model: MultimodalModel) -> None:
    """Raise :class:`ExportRefused` (one line) unless ``LlavaNextForConditionalGeneration`` can hold ``model``."""
    tiling = model.tiling
    if tiling is None:
        raise ExportRefused(f"llava-next holds tiled models; this one reads fixed-size images (set {KEY}."
                            "image_grid_pinpoints, or export as hf-llava)")
    if not tiling.unpad or not tiling.newline:
        off = "unpad" if not tiling.unpad else "newline"
        raise ExportRefused(f"llava-next always unpads and adds newline tokens; this model has {KEY}.{off}: false")
    if tiling.max_tokens is not None:
        raise ExportRefused(f"llava-next has no image-token cap; this model has {KEY}.max_image_tokens: "
                            f"{tiling.max_tokens} (LLaVA-OneVision's anyres_max shrinks differently)")
    patches = model.vision.image_size // model.vision.patch_size
    if tiling.tokens_per_side != patches:
        raise ExportRefused(f"llava-next lays out the tower's {patches} x {patches} patches per crop; the connector "
                            f"gives {tiling.tokens_per_side} x {tiling.tokens_per_side}")
    llava_parts(model)


def export_llava_next(
    model: MultimodalModel,
    output: str | Path,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    merge_lora: bool = True,
) -> ExportReport:
    """Write ``model`` (LoRA merged first, in place) to ``output`` in the llava-hf LLaVA-NeXT layout; the folder
    appears whole or not at all, and only an empty folder or an earlier export is replaced."""
    check_llava_next_exportable(model)
    refuse_unless_ours(output, EXPORT_MARKER, "a llava-next export")
    newline = getattr(model.connector, NEWLINE).detach()
    with atomic_directory(output, owned_marker=EXPORT_MARKER, what="a llava-next export") as staging:
        inner = staging / "hf-llava"
        report = write_hf_llava(model, inner, dtype, max_shard_bytes, merge_lora)
        for item in inner.iterdir():
            shutil.move(str(item), str(staging / item.name))
        inner.rmdir()
        target_dtype = torch_dtype(dtype) if dtype else model.dtype  # as the hf-llava writer chose
        weight_files = add_newline(staging, newline.to(target_dtype).contiguous())
        rewrite_json(staging / "config.json", lambda config: llava_next_config(config, model))
        rewrite_json(staging / "preprocessor_config.json", lambda _: llava_next_image_processor(model))
        rewrite_json(staging / "processor_config.json", lambda config: {**config, "processor_class":
                                                                         "LlavaNextProcessor"})
        rewrite_json(staging / EXPORT_MARKER, lambda marker: {**marker, "format": FORMAT})
    report.output = Path(output)
    report.files = [*weight_files, *(name for name in report.files if not name.startswith("model"))]
    report.notes.append("llava-next: image_newline added, config and processors set to LlavaNext "
                        f"(image_grid_pinpoints {[list(pair) for pair in model.tiling.pinpoints]})")
    return report


def add_newline(folder: Path, newline: torch.Tensor) -> list[str]:
    """``image_newline`` in a file of its own, listed in the shard index; a single ``model.safetensors`` becomes
    a one-shard set with an index (transformers reads ``model.safetensors`` alone when it exists). The weight
    files, as now named."""
    save_file({"image_newline": newline}, str(folder / NEWLINE_FILE), metadata={"format": "pt"})
    index_path = folder / INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text())
    else:
        from safetensors import safe_open

        (folder / "model.safetensors").rename(folder / SINGLE_SHARD)
        with safe_open(str(folder / SINGLE_SHARD), "pt") as handle:
            index = {"metadata": {}, "weight_map": dict.fromkeys(handle.keys(), SINGLE_SHARD)}
    index["weight_map"]["image_newline"] = NEWLINE_FILE
    index.setdefault("metadata", {})["total_size"] = sum(path.stat().st_size for path in folder.glob("*.safetensors"))
    index_path.write_text(json.dumps(index, indent=2))
    return sorted({*index["weight_map"].values(), INDEX})


def rewrite_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2))


def llava_next_config(config: dict[str, Any], model: MultimodalModel) -> dict[str, Any]:
    """The hf-llava config as ``LlavaNextConfig``: its class, the grid, no fixed image-sequence length."""
    config = {key: value for key, value in config.items() if key != "image_seq_length"}
    return {**config, "architectures": ["LlavaNextForConditionalGeneration"], "model_type": "llava_next",
            "image_grid_pinpoints": [list(pair) for pair in model.tiling.pinpoints]}


def llava_next_image_processor(model: MultimodalModel) -> dict[str, Any]:
    """``LlavaNextImageProcessor``: the tower's resize, crop and statistics applied to every crop and the
    thumbnail, the image first fitted onto the best grid resolution (``do_pad``)."""
    base = image_processor_config(model.vision.transform)
    return {**base, "image_processor_type": "LlavaNextImageProcessor", "processor_class": "LlavaNextProcessor",
            "image_grid_pinpoints": [list(pair) for pair in model.tiling.pinpoints], "do_pad": True}
