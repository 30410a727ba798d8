"""Exporting a medzoo model to the llava-hf layout (``transformers.LlavaForConditionalGeneration``, vLLM).

The files are written explicitly, not through the installed transformers' ``save_pretrained``:

- ``model.safetensors`` (or shards + index) with the classic llava-hf keys ``vision_tower.*``,
  ``multi_modal_projector.linear_1/2.*``, ``language_model.model.*``, ``language_model.lm_head.*``;
- ``config.json`` (``model_type: llava``, ``image_token_index``, ``vision_feature_layer``,
  ``vision_feature_select_strategy``, ``projector_hidden_act``, ``vision_config``, ``text_config``);
- the tokenizer (holding ``<image>``) with the chat template, ``chat_template.jinja``,
  ``preprocessor_config.json``, ``processor_config.json`` and ``generation_config.json``.

Every combination the layout can express is exported: a transformers vision tower AutoModel rebuilds from its
config (CLIP, SigLIP, ...; ``hf_llava_vision``), a per-feature Linear-GELU-Linear or single-Linear projector
(``hf_llava_projector``) and a ``model`` + ``lm_head`` causal LM of any ``model_type`` (``hf_llava_text``).
The rest is refused with a one-line reason (a timm/open_clip tower, fused towers, multi-layer features, a
token-reducing or token-mixing connector, a deeper MLP, a head with a bias or logit soft-capping, the v1.0
``<im_start>``/``<im_patch>``/``<im_end>`` markup). LoRA adapters are merged first, or the language model's is
written beside the base as a PEFT adapter (``merge_lora=False``, ``hf_llava_adapter``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzoo.app.interop.chat_templates import calibrated_chat_template, chat_template_for
from medzoo.app.interop.checkpoint_files import DEFAULT_SHARD_BYTES, save_state_dict
from medzoo.app.interop.hf_llava_adapter import ADAPTER_DIR, take_language_adapter
from medzoo.app.interop.hf_llava_projector import IDENTITY_ACT, express_projector
from medzoo.app.interop.hf_llava_text import check_language, text_config
from medzoo.app.interop.hf_llava_vision import express_vision_tower, tower_config
from medzoo.app.interop.vllm_support import vllm_refusals
from medzoo.app.model_cards.writing import write_model_card
from medzoo.core.atomic_writes import atomic_directory, refuse_unless_ours, write_file
from medzoo.core.dtypes import torch_dtype
from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.llava_hf import LlavaHfProjector, LlavaHfTower
from medzoo.core.model.adapters import merge_adapters
from medzoo.core.model.image_processing import ImageTransform
from medzoo.core.model.llava_hf_weights import llava_hf_tensors
from medzoo.core.model.multimodal import MultimodalModel

__all__ = ["EXPORT_MARKER", "ExportRefused", "ExportReport", "check_exportable", "export_hf_llava"]

EXPORT_MARKER = "medzoo_export.json"


@dataclass(frozen=True)
class LlavaParts:
    """A model as llava-hf holds it: the vision tower and the projector's weights."""

    tower: LlavaHfTower
    projector: LlavaHfProjector


@dataclass
class ExportReport:
    output: Path
    files: list[str] = field(default_factory=list)
    merged_lora: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"exported to {self.output} (hf-llava): {', '.join(self.files)}"]
        if self.merged_lora:
            lines.append(f"merged LoRA adapters of: {', '.join(self.merged_lora)}")
        lines.extend(f"note: {note}" for note in self.notes)
        return lines


def llava_parts(model: MultimodalModel, probe: bool = True) -> LlavaParts:
    """The model's tower and projector as llava-hf holds them, or :class:`ExportRefused` (one line) naming
    what ``LlavaForConditionalGeneration`` cannot hold (``probe``: run the vision check on a probe image)."""
    spec = model.spec
    if model.markup.kind != "placeholder":
        raise ExportRefused("hf-llava cannot hold the <im_start>/<im_patch>/<im_end> image markup (LLaVA-Med v1.0); "
                            "it expands a single <image> token")
    connector_name = spec.get("connector", {}).get("name", type(model.connector).__name__)
    projector = express_projector(model.connector, connector_name)
    check_language(model.language, spec.get("language", {}).get("name", type(model.language).__name__))
    vision_name = spec.get("vision", {}).get("name", type(model.vision).__name__)
    tower = express_vision_tower(model.vision, vision_name, probe=probe)
    return LlavaParts(tower, projector)


def check_exportable(model: MultimodalModel) -> None:
    """Raise :class:`ExportRefused` (one line) unless ``LlavaForConditionalGeneration`` can hold ``model``."""
    if getattr(model, "tiling", None) is not None:
        raise ExportRefused("hf-llava cannot hold tiled images (model.vision.options.image_grid_pinpoints): "
                            "LlavaForConditionalGeneration reads one fixed-size picture; export as llava-next")
    if getattr(model, "scales", None) is not None:
        raise ExportRefused(f"hf-llava cannot hold multi-scale features (model.vision.options.multiscale: "
                            f"{list(model.scales)}): LlavaForConditionalGeneration runs its tower at one scale")
    llava_parts(model)


def export_hf_llava(
    model: MultimodalModel,
    output: str | Path,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    merge_lora: bool = True,
) -> ExportReport:
    """Write ``model`` (LoRA merged first, in place) to ``output`` in the llava-hf layout.

    ``merge_lora=False``: the language model's LoRA adapter is taken off instead and written to ``adapter/``
    in PEFT format for the exported base (``hf_llava_adapter``); other modules' adapters are still merged.
    The folder appears whole or not at all; an existing ``output`` is replaced only when it is empty or an
    earlier export (it holds ``medzoo_export.json``), anything else is refused before any work is done.
    """
    check_exportable(model)
    return write_hf_llava(model, output, dtype, max_shard_bytes, merge_lora)


def write_hf_llava(
    model: MultimodalModel,
    output: str | Path,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    merge_lora: bool = True,
) -> ExportReport:
    """:func:`export_hf_llava` without its :func:`check_exportable` (the llava-next export checks its own)."""
    refuse_unless_ours(output, EXPORT_MARKER, "an hf-llava export")
    report = ExportReport(Path(output))
    adapter = None if merge_lora else take_language_adapter(model)
    if not merge_lora and adapter is None:
        report.notes.append("no LoRA adapter on the language model: nothing kept unmerged, no adapter/ written")
    report.merged_lora = merge_adapters(model)
    parts = llava_parts(model, probe=False)  # after merging: the weights as they are now (checked above)
    target_dtype = torch_dtype(dtype) if dtype else model.dtype
    if parts.projector.act == IDENTITY_ACT:
        report.notes.append(f"the {model.spec.get('connector', {}).get('name')} connector is written as "
                            f"projector_hidden_act {IDENTITY_ACT!r} with an identity layer (exact)")
    with atomic_directory(output, owned_marker=EXPORT_MARKER, what="an hf-llava export") as staging:
        tensors = hf_llava_state_dict(model, parts, target_dtype)
        files = save_state_dict(tensors, staging, max_shard_bytes)
        report.files = [file.name for file in files]
        config = hf_llava_config(model, parts, target_dtype)
        report.notes.extend(f"vLLM will not load this export (transformers does): {reason}"
                            for reason in vllm_refusals(config))
        _write_json(staging / "config.json", config)
        _write_json(staging / "generation_config.json", generation_config(model))
        report.files += ["config.json", "generation_config.json"]
        report.files += write_processor_files(model, parts.tower, staging, report)
        if adapter is not None:
            written = adapter.save(staging / ADAPTER_DIR, str(Path(output).resolve()), target_dtype)
            report.files += [f"{ADAPTER_DIR}/{name}" for name in written]
            report.notes.append(f"LoRA adapter of the language model kept unmerged in {ADAPTER_DIR}/ (PEFT): "
                                f"PeftModel.from_pretrained(LlavaForConditionalGeneration(...), '{ADAPTER_DIR}')")
        _write_json(staging / EXPORT_MARKER, {
            "format": "hf-llava",
            "medzoo_model": model.spec,
            "template": model.language.template_name,
            "dtype": str(target_dtype).removeprefix("torch."),
            "adapter": ADAPTER_DIR if adapter is not None else None,
        })
        write_model_card(staging, Path(output), {"model": {**model.spec, "dtype": str(target_dtype).removeprefix("torch.")}},
                         model, export="hf-llava")
    return report


def hf_llava_state_dict(model: MultimodalModel, parts: LlavaParts, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's tensors under the classic llava-hf keys (``llava_hf_tensors``, the one mapping), in ``dtype``
    (tied weights are written twice)."""
    tensors = llava_hf_tensors(model, parts.tower, parts.projector)
    converted: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        tensor = value.detach().to(dtype).contiguous()
        if tensor.data_ptr() in seen:  # tied weights: safetensors stores each tensor once
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        converted[key] = tensor
    return converted


def hf_llava_config(model: MultimodalModel, parts: LlavaParts, dtype: torch.dtype) -> dict[str, Any]:
    text_model_config = model.language.model.config
    tokenizer = model.tokenizer
    dtype_name = str(dtype).removeprefix("torch.")
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": model.markup.placeholder_id,
        "image_seq_length": model.num_image_tokens,
        "vision_feature_layer": parts.tower.feature_layer,
        "vision_feature_select_strategy": parts.tower.select_strategy,
        "projector_hidden_act": parts.projector.act,
        "multimodal_projector_bias": True,
        "tie_word_embeddings": bool(getattr(text_model_config, "tie_word_embeddings", False)),
        "pad_token_id": tokenizer.pad_token_id,
        "vision_config": tower_config(parts.tower),
        "text_config": text_config(model.language),
        "torch_dtype": dtype_name,
        "dtype": dtype_name,
    }


def generation_config(model: MultimodalModel) -> dict[str, Any]:
    """Special ids; ``eos_token_id`` also holds each stop string of the template that is one token (ChatML's
    ``<|im_end|>`` where the tokenizer's EOS is ``<|endoftext|>``), so ``generate`` stops where medzoo does."""
    tokenizer = model.tokenizer
    stops = stop_token_ids(model)
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": stops[0] if len(stops) == 1 else stops,
        "pad_token_id": tokenizer.pad_token_id,
    }


def stop_token_ids(model: MultimodalModel) -> list[int]:
    """The EOS id and the ids of the template's single-token stop strings (multi-token ones, such as
    ``###``, need ``stop_strings`` and a tokenizer in ``generate``, which the consumers do not pass)."""
    from medzoo.core.plugin_system.template_lookup import template_for

    tokenizer = model.tokenizer
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for stop in template_for(model.language.template_name, tokenizer).stop_strings:
        encoded = tokenizer(stop, add_special_tokens=False).input_ids
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def write_processor_files(model: MultimodalModel, tower: LlavaHfTower, output: Path, report: ExportReport) -> list[str]:
    """Tokenizer + chat template, image processor and ``LlavaProcessor`` settings."""
    vision = model.vision
    template_name = model.language.template_name
    template = calibrated_chat_template(template_name, model.tokenizer)
    tokenizer = copy.deepcopy(model.tokenizer)
    files = []
    if template is not None and template_name == "chat_template":
        report.notes.append("chat template: the tokenizer's own, which the model was trained with, behind a prelude "
                            "turning image/text parts into its '<image>\\n' + text string content")
    if template is None:
        known = template_name == "chat_template" or chat_template_for(template_name) is not None
        why = "cannot reproduce its ids" if known else "has no Jinja equivalent"
        report.notes.append(f"no chat template written: medzoo template {template_name!r} {why}; "
                            "render prompts with medzoo (or by hand) and tokenise them with special tokens")
        tokenizer.chat_template = None  # the tokenizer's own would render prompts the model was not trained on
    else:
        tokenizer.chat_template = template
        write_file(output / "chat_template.jinja", template)
        files.append("chat_template.jinja")
    tokenizer.save_pretrained(str(output))
    files.append("tokenizer files")
    image_processor = image_processor_config(vision.transform)
    _write_json(output / "preprocessor_config.json", image_processor)
    processor = {
        "processor_class": "LlavaProcessor",
        "image_token": model.tokenizer.convert_ids_to_tokens(model.markup.placeholder_id),
        "patch_size": vision.patch_size,
        "vision_feature_select_strategy": tower.select_strategy,
        "num_additional_image_tokens": tower.num_additional_image_tokens,
    }
    _write_json(output / "processor_config.json", processor)
    return [*files, "preprocessor_config.json", "processor_config.json"]


def image_processor_config(transform: ImageTransform) -> dict[str, Any]:
    """The transformers image processor doing ``transform`` on RGB images: ``LlavaImageProcessor`` (padding to a
    square with the mean colour) for ``pad``, else ``CLIPImageProcessor``; shortest-edge resize and centre crop,
    or both edges resized (SigLIP's ``square``)."""
    side = transform.size
    if transform.resize == "square":
        size: dict[str, int] = {"height": side, "width": side}
    else:
        size = {"shortest_edge": transform.resize_size or side}
    pad = transform.aspect == "pad"
    return {
        "image_processor_type": "LlavaImageProcessor" if pad else "CLIPImageProcessor",
        "processor_class": "LlavaProcessor",
        "do_pad": pad,
        "do_resize": True,
        "size": size,
        "resample": 3,
        "do_center_crop": transform.resize != "square",
        "crop_size": {"height": side, "width": side},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(transform.mean),
        "image_std": list(transform.std),
        "do_convert_rgb": True,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_file(path, json.dumps(data, indent=2) + "\n")
