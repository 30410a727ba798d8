"""Exporting a medzoo model to the llava-hf layout (``transformers.LlavaForConditionalGeneration``, vLLM).

The files are written explicitly, not through the installed transformers' ``save_pretrained``:

- ``model.safetensors`` (or shards + index) with the classic llava-hf keys ``vision_tower.vision_model.*``,
  ``multi_modal_projector.linear_1/2.*``, ``language_model.model.*``, ``language_model.lm_head.*``;
- ``config.json`` (``model_type: llava``, ``image_token_index``, ``vision_feature_layer``,
  ``vision_feature_select_strategy``, ``projector_hidden_act``, ``vision_config``, ``text_config``);
- the tokenizer (holding ``<image>``) with the chat template, ``chat_template.jinja``,
  ``preprocessor_config.json``, ``processor_config.json`` and ``generation_config.json``.

What the format cannot hold is refused with a one-line reason: a non-CLIP encoder, a connector other than
``mlp2x_gelu`` (llava-hf's projector is Linear-GELU-Linear), a token-reducing connector, or the v1.0
``<im_start>``/``<im_patch>``/``<im_end>`` markup. LoRA adapters are merged first.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzoo.app.interop import InteropError
from medzoo.app.interop.chat_templates import calibrated_chat_template, chat_template_for
from medzoo.app.interop.checkpoint_files import DEFAULT_SHARD_BYTES, save_state_dict
from medzoo.core.dtypes import torch_dtype
from medzoo.core.files import atomic_directory, refuse_unless_ours
from medzoo.core.model.adapters import merge_adapters
from medzoo.core.model.multimodal import MultimodalModel

EXPORT_MARKER = "medzoo_export.json"
#: text-config fields written for each language-model family (read by transformers 4.4x-5.x and vLLM)
TEXT_FIELDS_COMMON = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
    "initializer_range", "attention_dropout", "tie_word_embeddings",
)
TEXT_FIELDS = {
    "mistral": (*TEXT_FIELDS_COMMON, "sliding_window"),
    "llama": (*TEXT_FIELDS_COMMON, "attention_bias", "mlp_bias", "pretraining_tp"),
}
VISION_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
    "image_size", "patch_size", "hidden_act", "layer_norm_eps", "attention_dropout", "initializer_range",
    "initializer_factor", "projection_dim",
)


class ExportRefused(InteropError):
    """The model holds something the target format cannot represent."""


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


def check_exportable(model: MultimodalModel) -> None:
    """Raise :class:`ExportRefused` (one line) unless ``LlavaForConditionalGeneration`` can hold ``model``."""
    from medzoo.plugins.connectors.mlp import MlpGeluConnector
    from medzoo.plugins.language.hf_causal import HFCausalLanguageModel
    from medzoo.plugins.vision.clip import ClipVisionEncoder

    if not isinstance(model.vision, ClipVisionEncoder):
        raise ExportRefused(
            f"hf-llava cannot hold a {type(model.vision).__name__} vision encoder: llava-hf loads a CLIP "
            "vision tower only (BiomedCLIP/open_clip towers stay in the medzoo format)"
        )
    connector = model.connector
    if not isinstance(connector, MlpGeluConnector) or connector.depth != 2:
        name = f"mlp{connector.depth}x_gelu" if isinstance(connector, MlpGeluConnector) else type(connector).__name__
        raise ExportRefused(f"hf-llava cannot hold the {name} connector: its projector is Linear-GELU-Linear "
                            "(mlp2x_gelu) only")
    if model.num_image_tokens != model.vision.num_tokens:
        raise ExportRefused("hf-llava cannot hold a token-reducing connector: one image token per vision feature")
    if model.markup.kind != "placeholder":
        raise ExportRefused("hf-llava cannot hold the <im_start>/<im_patch>/<im_end> image markup (LLaVA-Med v1.0); "
                            "it expands a single <image> token")
    language = model.language
    model_type = getattr(getattr(language, "model", None), "config", None)
    model_type = getattr(model_type, "model_type", None)
    if not isinstance(language, HFCausalLanguageModel) or model_type not in TEXT_FIELDS:
        raise ExportRefused(f"hf-llava export supports Mistral and Llama language models, not {model_type!r}")
    if not isinstance(model.vision.feature_layer, int):
        raise ExportRefused("hf-llava export needs a single vision feature layer")


def export_hf_llava(
    model: MultimodalModel,
    output: str | Path,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> ExportReport:
    """Write ``model`` (LoRA merged first, in place) to ``output`` in the llava-hf layout.

    The folder appears whole or not at all; an existing ``output`` is replaced only when it is empty or an
    earlier export (it holds ``medzoo_export.json``), anything else is refused before any work is done.
    """
    check_exportable(model)
    refuse_unless_ours(output, EXPORT_MARKER, "an hf-llava export")
    report = ExportReport(Path(output))
    report.merged_lora = merge_adapters(model)
    target_dtype = torch_dtype(dtype) if dtype else model.dtype
    with atomic_directory(output, owned_marker=EXPORT_MARKER, what="an hf-llava export") as staging:
        tensors = hf_llava_state_dict(model, target_dtype)
        files = save_state_dict(tensors, staging, max_shard_bytes)
        report.files = [file.name for file in files]
        config = hf_llava_config(model, target_dtype)
        _write_json(staging / "config.json", config)
        _write_json(staging / "generation_config.json", generation_config(model))
        report.files += ["config.json", "generation_config.json"]
        report.files += write_processor_files(model, staging, report)
        _write_json(staging / EXPORT_MARKER, {
            "format": "hf-llava",
            "medzoo_model": model.spec,
            "template": model.language.template_name,
            "dtype": str(target_dtype).removeprefix("torch."),
        })
    return report


def hf_llava_state_dict(model: MultimodalModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's tensors under the classic llava-hf keys (tied weights are written twice)."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.vision.model.state_dict().items():
        tensors[f"vision_tower.vision_model.{key.removeprefix('vision_model.')}"] = value
    projector = {"layers.0.": "multi_modal_projector.linear_1.", "layers.2.": "multi_modal_projector.linear_2."}
    for key, value in model.connector.state_dict().items():
        prefix = key[: key.index(".", len("layers.")) + 1]
        tensors[projector[prefix] + key[len(prefix):]] = value
    for key, value in model.language.model.state_dict().items():
        tensors[f"language_model.{key}"] = value
    converted: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        tensor = value.detach().to(dtype).contiguous()
        if tensor.data_ptr() in seen:  # tied weights: safetensors stores each tensor once
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        converted[key] = tensor
    return converted


def hf_llava_config(model: MultimodalModel, dtype: torch.dtype) -> dict[str, Any]:
    vision_config = model.vision.model.config
    text_config = model.language.model.config
    text_type = text_config.model_type
    text = {key: getattr(text_config, key) for key in TEXT_FIELDS[text_type] if hasattr(text_config, key)}
    text["vocab_size"] = model.language.input_embeddings().num_embeddings
    rope = dict(getattr(text_config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise ExportRefused(f"hf-llava export supports default RoPE only, not {rope.get('rope_type')!r}")
    text["rope_theta"] = float(rope.get("rope_theta", getattr(text_config, "rope_theta", 10000.0)))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": text["rope_theta"]}
    tokenizer = model.tokenizer
    text.update(
        model_type=text_type,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = {key: getattr(vision_config, key) for key in VISION_FIELDS if hasattr(vision_config, key)}
    vision["model_type"] = "clip_vision_model"
    dtype_name = str(dtype).removeprefix("torch.")
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": model.markup.placeholder_id,
        "image_seq_length": model.num_image_tokens,
        "vision_feature_layer": model.vision.feature_layer,
        "vision_feature_select_strategy": "default" if model.vision.feature_select == "patch" else "full",
        "projector_hidden_act": "gelu",
        "multimodal_projector_bias": True,
        "tie_word_embeddings": bool(getattr(text_config, "tie_word_embeddings", False)),
        "pad_token_id": tokenizer.pad_token_id,
        "vision_config": vision,
        "text_config": text,
        "torch_dtype": dtype_name,
        "dtype": dtype_name,
    }


def generation_config(model: MultimodalModel) -> dict[str, Any]:
    tokenizer = model.tokenizer
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def write_processor_files(model: MultimodalModel, output: Path, report: ExportReport) -> list[str]:
    """Tokenizer + chat template, image processor and ``LlavaProcessor`` settings."""
    vision = model.vision
    template_name = model.language.template_name
    template = calibrated_chat_template(template_name, model.tokenizer)
    tokenizer = copy.deepcopy(model.tokenizer)
    files = []
    if template is None:
        why = "has no Jinja equivalent" if chat_template_for(template_name) is None else "cannot reproduce its ids"
        report.notes.append(f"no chat template written: medzoo template {template_name!r} {why}; "
                            "render prompts with medzoo (or by hand) and tokenise them with special tokens")
    else:
        tokenizer.chat_template = template
        (output / "chat_template.jinja").write_text(template)
        files.append("chat_template.jinja")
    tokenizer.save_pretrained(str(output))
    files.append("tokenizer files")
    pad = vision.image_aspect == "pad"
    image_processor = {
        "image_processor_type": "LlavaImageProcessor" if pad else "CLIPImageProcessor",
        "processor_class": "LlavaProcessor",
        "do_pad": pad,
        "do_resize": True,
        "size": {"shortest_edge": vision.image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": vision.image_size, "width": vision.image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(vision.image_mean),
        "image_std": list(vision.image_std),
        "do_convert_rgb": True,
    }
    _write_json(output / "preprocessor_config.json", image_processor)
    processor = {
        "processor_class": "LlavaProcessor",
        "image_token": model.tokenizer.convert_ids_to_tokens(model.markup.placeholder_id),
        "patch_size": vision.patch_size,
        "vision_feature_select_strategy": "default" if vision.feature_select == "patch" else "full",
        "num_additional_image_tokens": 1 if vision.has_cls_token else 0,
    }
    _write_json(output / "processor_config.json", processor)
    return [*files, "preprocessor_config.json", "processor_config.json"]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
