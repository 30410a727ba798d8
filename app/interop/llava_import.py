"""Importing LLaVA-family checkpoints into medzoo model directories.

Formats:

- ``llava-med-v1.5`` / ``llava-v1.5`` / ``llava-med-v1.0``: the official LLaVA layout (``model.layers.N.*``,
  ``lm_head.weight``, ``model.mm_projector.*``, ``model.vision_tower.vision_tower.vision_model.*``) with a flat
  ``config.json`` carrying the ``mm_*`` fields. They differ in the language plugin and template they imply.
- ``hf-llava``: the llava-hf layout (``vision_tower.*``, ``multi_modal_projector.linear_1/2.*``,
  ``language_model.model.*``, ``language_model.lm_head.*``, or transformers v5's ``model.*`` tree) with
  ``vision_config`` / ``text_config``.

Every tensor is accounted for: it lands in a module, or is a known recomputed buffer and is listed as ignored;
an unknown tensor is an error. Config fields that medzoo does not use are tolerated and listed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from medzoo.app.interop import InteropError
from medzoo.app.interop.checkpoint_files import load_state_dict, read_config, resolve_checkpoint_dir
from medzoo.app.interop.official_preprocessing import PREPROCESSING_REVISION, official_image_options
from medzoo.app.model_cards.writing import write_model_card
from medzoo.core.atomic_writes import refuse_overlap, refuse_unless_ours
from medzoo.core.dtypes import DTYPE_NAMES, torch_dtype
from medzoo.core.errors import MedzooError
from medzoo.core.model.components import build_connector
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components


@dataclass(frozen=True)
class ImportFormat:
    name: str
    #: ``official`` (LLaVA's own code) or ``hf-llava``
    layout: str
    #: language plugin and template; ``None``: decided by the checkpoint's text model type
    language: str | None
    template: str | None
    model_types: tuple[str, ...]
    description: str


FORMATS: dict[str, ImportFormat] = {
    "llava-med-v1.5": ImportFormat(
        "llava-med-v1.5", "official", "mistral", "mistral_instruct", ("llava_mistral", "mistral"),
        "LLaVA-Med v1.5 (LlavaMistralForCausalLM): CLIP-L/14-336, mlp2x_gelu, Mistral-7B-Instruct",
    ),
    "llava-v1.5": ImportFormat(
        "llava-v1.5", "official", "vicuna", "vicuna_v1", ("llava_llama", "llava", "llama"),
        "LLaVA v1.5 (LlavaLlamaForCausalLM): CLIP-L/14-336, mlp2x_gelu, Vicuna-v1.5",
    ),
    "llava-med-v1.0": ImportFormat(
        "llava-med-v1.0", "official", "llama", "llava_med_v1", ("llava", "llava_llama", "llama"),
        "LLaVA-Med v1.0 after apply-delta: CLIP-L/14, linear projector, LLaMA-7B, <im_start>/<im_patch>/<im_end>",
    ),
    "hf-llava": ImportFormat(
        "hf-llava", "hf-llava", None, None, ("llava",),
        "llava-hf layout (transformers LlavaForConditionalGeneration, vLLM)",
    ),
}
#: language plugin and template for an hf-llava text model type
HF_TEXT_MODELS = {"mistral": ("mistral", "mistral_instruct"), "llama": ("vicuna", "vicuna_v1")}

#: ``config.json`` fields of the official layout that the import reads
USED_MM_FIELDS = frozenset({
    "mm_vision_tower", "mm_hidden_size", "mm_projector_type", "mm_vision_select_layer",
    "mm_vision_select_feature", "mm_use_im_start_end", "image_aspect_ratio",
})
#: bookkeeping fields of any transformers config
BOOKKEEPING_FIELDS = frozenset({
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "use_cache",
})
#: legacy config names a transformers config class still accepts (folded into ``rope_parameters``)
LEGACY_TEXT_FIELDS = frozenset({"rope_theta", "rope_scaling"})
#: recomputed buffers that old checkpoints carry
IGNORED_BUFFER_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")
#: architectures of the CLIP towers LLaVA uses, for machines that cannot reach ``mm_vision_tower``
KNOWN_VISION_TOWERS: dict[str, dict[str, Any]] = {
    name: {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": size, "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    }
    for name, size in (("openai/clip-vit-large-patch14-336", 336), ("openai/clip-vit-large-patch14", 224))
}
#: a final norm whose weights average below this looks like delta weights, not a model
DELTA_NORM_THRESHOLD = 0.05
RECIPE_FILE = "recipe.yaml"
#: an HF copy of the vision tower for the recipe, when the tower has no other source
VISION_TOWER_DIR = "vision_tower"
DEFAULT_CACHE = Path("~/.cache/medzoo/imported")


@dataclass
class ImportReport:
    """What an import (or apply-delta) did, for the CLI and the manifest."""

    source: str
    format: str
    output: Path | None = None
    vision_source: str = "checkpoint"
    #: where the recipe's vision tower comes from (``None``: a copy written next to the model)
    vision_pretrained: str | None = None
    unused_config_fields: list[str] = field(default_factory=list)
    ignored_tensors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tensors: dict[str, int] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "vision_source": self.vision_source,
            "unused_config_fields": self.unused_config_fields,
            "ignored_tensors": self.ignored_tensors,
            "tensors": self.tensors,
            "notes": self.notes,
            "preprocessing_revision": PREPROCESSING_REVISION,
        }

    def lines(self) -> list[str]:
        counts = ", ".join(f"{name} {count}" for name, count in self.tensors.items())
        lines = [f"imported {self.source} ({self.format}) -> {self.output}", f"tensors: {counts}"]
        lines.append(f"vision tower weights: {self.vision_source}")
        if self.unused_config_fields:
            shown = ", ".join(self.unused_config_fields)
            lines.append(f"config fields not used ({len(self.unused_config_fields)}): {shown}")
        if self.ignored_tensors:
            lines.append(f"recomputed buffers ignored: {len(self.ignored_tensors)} (e.g. {self.ignored_tensors[0]})")
        lines.extend(f"note: {note}" for note in self.notes)
        return lines


# ---- entry points -----------------------------------------------------------------------------------------------
def import_checkpoint(
    source: str | Path,
    format: str,
    output: str | Path,
    *,
    dtype: str | None = None,
    tokenizer: str | None = None,
    template: str | None = None,
    vision_tower: str | None = None,
) -> ImportReport:
    """Read the checkpoint at ``source`` (directory or hub id) and write a medzoo model directory to ``output``.

    ``output`` may not be, hold or lie inside a local ``source``, and a folder there that is not a medzoo model is
    refused: both before anything is read.
    """
    refuse_import_output(Path(output), source)
    directory = resolve_checkpoint_dir(source)
    config = read_config(directory)
    state = load_state_dict(directory)
    model, report = convert_checkpoint(
        state, config, format, tokenizer_source=tokenizer or str(directory), source=str(source),
        dtype=dtype, template=template, vision_tower=vision_tower,
    )
    write_imported(model, report, Path(output))
    return report


def import_cached(source: str, format: str, cache_root: str | Path | None = None, **options: Any) -> Path:
    """The medzoo directory of ``source``, imported on first use under ``cache_root`` (``$MEDZOO_IMPORT_CACHE``
    or ``~/.cache/medzoo/imported``)."""
    root = Path(cache_root or os.environ.get("MEDZOO_IMPORT_CACHE") or DEFAULT_CACHE).expanduser()
    target = root / re.sub(r"[^\w.-]+", "--", f"{source}@{format}")
    if not is_current_import(target):
        import_checkpoint(source, format, target, **options)
    return target


def is_current_import(directory: Path) -> bool:
    """``directory`` holds an import whose image settings are today's (an older revision is imported again)."""
    from medzoo.core.model.persistence import MANIFEST

    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    imported = manifest.get("imported") if isinstance(manifest, dict) else None
    return isinstance(imported, dict) and imported.get("preprocessing_revision") == PREPROCESSING_REVISION


def convert_checkpoint(
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    format: str,
    *,
    tokenizer_source: str,
    source: str,
    dtype: str | None = None,
    template: str | None = None,
    vision_tower: str | None = None,
) -> tuple[MultimodalModel, ImportReport]:
    """Build the medzoo model that holds ``state`` (a checkpoint's tensors) as ``config`` describes."""
    if format not in FORMATS:
        raise InteropError(f"unknown import format {format!r}; expected one of {', '.join(FORMATS)}")
    spec = FORMATS[format]
    model_type = config.get("model_type")
    if model_type not in spec.model_types:
        raise InteropError(
            f"{source}: config.json model_type {model_type!r} does not fit format {format!r} "
            f"(expected one of {', '.join(spec.model_types)})"
        )
    refuse_delta(config, state, source)
    report = ImportReport(source=source, format=format)
    if spec.layout == "hf-llava":
        model = _from_hf_llava(state, config, tokenizer_source, template, report)
    else:
        model = _from_official(state, config, spec, tokenizer_source, template, vision_tower, report)
    dtype_name = dtype or _checkpoint_dtype(config)
    model.spec["dtype"] = dtype_name
    if dtype_name not in DTYPE_NAMES:
        raise InteropError(f"dtype {dtype_name!r} is not supported; expected one of {', '.join(DTYPE_NAMES)}")
    return model.to(torch_dtype(dtype_name)).eval(), report


def refuse_import_output(output: Path, *sources: str | Path) -> None:
    """``output`` overlaps no local source, and is missing, empty or a medzoo model directory."""
    from medzoo.core.model.persistence import MANIFEST

    for source in sources:
        if Path(source).expanduser().exists():
            refuse_overlap(output, Path(source).expanduser(), "--output")
    refuse_unless_ours(output, MANIFEST, "an imported model")


def write_imported(model: MultimodalModel, report: ImportReport, output: Path) -> None:
    """Save the model directory with the import report in its manifest, and the matching recipe."""
    model.save_pretrained(str(output), extra={"imported": report.manifest_entry()}, folder_files=write_model_card)
    report.output = output
    if report.vision_pretrained is None:
        _write_vision_tower(model, output / VISION_TOWER_DIR)
    (output / RECIPE_FILE).write_text(recipe_text(model, report, output))


def refuse_delta(config: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> None:
    """Delta weights are not a model: refuse them with the command that turns them into one."""
    if "medzoo_delta" in config:
        raise InteropError(f"{source}: these are delta weights (made by medzoo make-delta); run `medzoo apply-delta`")
    norm = state.get("model.norm.weight")
    if norm is not None and float(norm.float().abs().mean()) < DELTA_NORM_THRESHOLD:
        raise InteropError(
            f"{source}: model.norm.weight averages {float(norm.float().abs().mean()):.4f}; this looks like delta "
            "weights (LLaVA-Med v1.0 is released as a delta against LLaMA-7B): run `medzoo apply-delta` first"
        )


# ---- the official layout ----------------------------------------------------------------------------------------
def _from_official(
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    spec: ImportFormat,
    tokenizer_source: str,
    template: str | None,
    vision_tower: str | None,
    report: ImportReport,
) -> MultimodalModel:
    parts = _split(state, report, {
        "vision": ("model.vision_tower.",),
        "connector": ("model.mm_projector.",),
        "language": ("model.", "lm_head."),
    })
    language_cls = components().get("language_model", spec.language).factory
    text_fields, unused = _text_fields(language_cls.config_class, config, USED_MM_FIELDS)
    report.unused_config_fields = unused
    language = _build_language(language_cls, text_fields, parts["language"], tokenizer_source, template or spec.template)

    tower_source = vision_tower or config.get("mm_vision_tower")
    image_settings, notes = official_image_options(spec.name, config)
    report.notes.extend(notes)
    options = {
        "feature_layer": int(config.get("mm_vision_select_layer", -2)),
        "feature_select": _feature_select(config.get("mm_vision_select_feature", "patch")),
        **image_settings,
    }
    vision_state = {_strip_vision_key(key): value for key, value in parts["vision"].items()}
    vision = _build_vision(vision_state, tower_source, options, report)
    if config.get("mm_hidden_size") not in (None, vision.hidden_size):
        raise InteropError(
            f"config.json mm_hidden_size {config['mm_hidden_size']} does not match the vision tower's hidden size "
            f"{vision.hidden_size}"
        )

    projector = str(config.get("mm_projector_type", "linear"))
    connector_state = _connector_state(projector, parts["connector"])
    connector = _build_connector(projector, connector_state, vision, language)
    markup = "im_start_end" if config.get("mm_use_im_start_end") else "placeholder"
    model_spec = _model_spec("clip", options, projector, language, markup)
    return MultimodalModel(vision, connector, language, markup, spec=model_spec)


def _strip_vision_key(key: str) -> str:
    """``model.vision_tower.vision_tower.vision_model.X`` (v1.5) or ``model.vision_tower.vision_model.X`` -> ``X``."""
    key = key.removeprefix("model.vision_tower.").removeprefix("vision_tower.")
    return key.removeprefix("vision_model.")


def _connector_state(projector: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if re.fullmatch(r"mlp[1-9][0-9]*x_gelu", projector):
        return {"layers." + key.removeprefix("model.mm_projector."): value for key, value in state.items()}
    if projector == "linear":
        return {"proj." + key.removeprefix("model.mm_projector."): value for key, value in state.items()}
    if projector == "identity":
        return dict(state)
    raise InteropError(f"config.json mm_projector_type {projector!r} is not supported; expected linear, "
                       "mlpNx_gelu or identity")


def _feature_select(value: str) -> str:
    if value not in ("patch", "cls_patch"):
        raise InteropError(f"config.json mm_vision_select_feature {value!r}; expected 'patch' or 'cls_patch'")
    return value


# ---- the llava-hf layout ----------------------------------------------------------------------------------------
HF_RENAMES = (
    ("model.vision_tower.", "vision:"),
    ("vision_tower.", "vision:"),
    ("model.multi_modal_projector.linear_1.", "connector:layers.0."),
    ("multi_modal_projector.linear_1.", "connector:layers.0."),
    ("model.multi_modal_projector.linear_2.", "connector:layers.2."),
    ("multi_modal_projector.linear_2.", "connector:layers.2."),
    ("model.language_model.", "language:model."),
    ("language_model.model.", "language:model."),
    ("language_model.lm_head.", "language:lm_head."),
    ("lm_head.", "language:lm_head."),
)
LLAVA_CONFIG_FIELDS = frozenset({
    "vision_config", "text_config", "image_token_index", "image_token_id", "image_seq_length",
    "vision_feature_layer", "vision_feature_select_strategy", "projector_hidden_act", "multimodal_projector_bias",
    "tie_word_embeddings", "pad_token_id", "ignore_index", "vocab_size",
})


def _from_hf_llava(
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    tokenizer_source: str,
    template: str | None,
    report: ImportReport,
) -> MultimodalModel:
    """A llava-hf ``LlavaForConditionalGeneration`` checkpoint: CLIP + mlp2x_gelu + a Llama or Mistral LM."""
    parts = _split_hf_llava(state, report)
    report.unused_config_fields = sorted(set(config) - LLAVA_CONFIG_FIELDS - BOOKKEEPING_FIELDS)
    layer, strategy = _hf_feature_settings(config)
    language = _hf_language(config, parts["language"], tokenizer_source, template, report)
    vision, options = _hf_vision(config, parts["vision"], tokenizer_source, layer, strategy)
    report.vision_source = "checkpoint"
    connector = _build_connector("mlp2x_gelu", parts["connector"], vision, language)
    model_spec = _model_spec("clip", options, "mlp2x_gelu", language, "placeholder")
    return MultimodalModel(vision, connector, language, "placeholder", spec=model_spec)


def _split_hf_llava(state: dict[str, torch.Tensor], report: ImportReport) -> dict[str, dict[str, torch.Tensor]]:
    """Rename llava-hf tensors to medzoo's modules (``HF_RENAMES``); recomputed buffers are listed as ignored."""
    parts: dict[str, dict[str, torch.Tensor]] = {"vision": {}, "connector": {}, "language": {}}
    unknown = []
    for key, value in state.items():
        if key.endswith(IGNORED_BUFFER_SUFFIXES):
            report.ignored_tensors.append(key)
            continue
        for prefix, target in HF_RENAMES:
            if key.startswith(prefix):
                part, _, new_prefix = target.partition(":")
                new_key = new_prefix + key[len(prefix):]
                parts[part][new_key.removeprefix("vision_model.") if part == "vision" else new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise InteropError(f"{len(unknown)} tensor(s) fit no module of the llava-hf layout (first: {unknown[0]})")
    report.tensors = {name: len(tensors) for name, tensors in parts.items()}
    return parts


def _hf_feature_settings(config: dict[str, Any]) -> tuple[int, str]:
    """(vision_feature_layer, vision_feature_select_strategy); refuses a projector or selection medzoo cannot run."""
    for key, expected in (("projector_hidden_act", "gelu"), ("multimodal_projector_bias", True)):
        if config.get(key, expected) != expected:
            raise InteropError(f"config.json {key} {config[key]!r}: medzoo's mlp2x_gelu needs {expected!r}")
    layer = config.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise InteropError(f"config.json vision_feature_layer {layer!r}: several feature layers are not supported")
    strategy = config.get("vision_feature_select_strategy", "default")
    if strategy not in ("default", "full"):
        raise InteropError(f"config.json vision_feature_select_strategy {strategy!r}; expected 'default' or 'full'")
    return layer, strategy


def _hf_language(config: dict[str, Any], state: dict[str, torch.Tensor], tokenizer_source: str,
                 template: str | None, report: ImportReport):
    """The language model of ``text_config``; its tokenizer's ``<image>`` must be the config's image token."""
    text_config = dict(config.get("text_config") or {})
    text_type = text_config.get("model_type", "llama")
    if text_type not in HF_TEXT_MODELS:
        raise InteropError(f"config.json text_config.model_type {text_type!r}; expected one of {', '.join(HF_TEXT_MODELS)}")
    language_name, default_template = HF_TEXT_MODELS[text_type]
    language_cls = components().get("language_model", language_name).factory
    text_fields, unused_text = _text_fields(language_cls.config_class, text_config, frozenset())
    report.unused_config_fields += [f"text_config.{name}" for name in unused_text]
    language = _build_language(language_cls, text_fields, state, tokenizer_source, template or default_template)
    image_token = config.get("image_token_index", config.get("image_token_id", 32000))
    if language.tokenizer.convert_tokens_to_ids("<image>") != image_token:
        raise InteropError(
            f"config.json image_token_index {image_token} is not the tokenizer's <image> id "
            f"({language.tokenizer.convert_tokens_to_ids('<image>')})"
        )
    return language


def _hf_vision(config: dict[str, Any], state: dict[str, torch.Tensor], tokenizer_source: str, layer: int,
               strategy: str) -> tuple[Any, dict[str, Any]]:
    """(the CLIP tower of ``vision_config`` with the processor's image statistics, its options)."""
    vision_config = dict(config.get("vision_config") or {})
    if vision_config.get("model_type", "clip_vision_model") not in ("clip_vision_model", "clip"):
        raise InteropError(f"config.json vision_config.model_type {vision_config.get('model_type')!r}; medzoo "
                           "imports CLIP vision towers")
    processor = _read_json(Path(tokenizer_source) / "preprocessor_config.json")
    options = {
        "feature_layer": layer,
        "feature_select": "patch" if strategy == "default" else "cls_patch",
        "image_aspect": "pad" if processor.get("do_pad") else "crop",
    }
    architecture = _vision_architecture(vision_config)
    for key in ("image_mean", "image_std"):
        if key in processor:
            architecture[key] = list(processor[key])
    return _load_vision(architecture, state, options), options


# ---- shared pieces ----------------------------------------------------------------------------------------------
def _split(
    state: dict[str, torch.Tensor], report: ImportReport, prefixes: dict[str, tuple[str, ...]]
) -> dict[str, dict[str, torch.Tensor]]:
    """Assign every tensor to the first module whose prefix it has; recomputed buffers are listed as ignored."""
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in prefixes}
    unknown = []
    for key, value in state.items():
        if key.endswith(IGNORED_BUFFER_SUFFIXES):
            report.ignored_tensors.append(key)
            continue
        part = next((name for name, starts in prefixes.items() if key.startswith(starts)), None)
        if part is None:
            unknown.append(key)
        else:
            parts[part][key] = value
    if unknown:
        raise InteropError(f"{len(unknown)} tensor(s) fit no module of the LLaVA layout (first: {unknown[0]})")
    report.tensors = {name: len(tensors) for name, tensors in parts.items()}
    return parts


def _text_fields(config_class: type, config: dict[str, Any], used: frozenset[str]) -> tuple[dict[str, Any], list[str]]:
    """The language-model architecture fields of ``config`` and the names of the fields nothing uses."""
    known = set(config_class().to_dict()) - BOOKKEEPING_FIELDS
    fields = {k: v for k, v in config.items() if k in known | LEGACY_TEXT_FIELDS}
    unused = sorted(set(config) - known - LEGACY_TEXT_FIELDS - BOOKKEEPING_FIELDS - used)
    normalised = config_class(**fields).to_dict()
    architecture = {k: v for k, v in normalised.items() if k in known}
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        architecture.pop(key, None)
    return architecture, unused


def _build_language(language_cls, fields: dict[str, Any], state: dict[str, torch.Tensor], tokenizer_source: str,
                    template: str):
    """The language model with ``state`` as its weights (no random initialisation of the full-size model)."""
    from accelerate import init_empty_weights

    embed = state.get("model.embed_tokens.weight")
    if embed is None:
        raise InteropError("the checkpoint has no model.embed_tokens.weight; expected a causal language model")
    fields = {**fields, "vocab_size": int(embed.shape[0]), "tokenizer": tokenizer_source}
    if fields.get("tie_word_embeddings") and "lm_head.weight" not in state:
        state = {**state, "lm_head.weight": embed}
    try:
        with init_empty_weights(include_buffers=False):
            language = language_cls.from_config(fields, template=template)
        _load_strict(language.model, state, "language model")
    except MedzooError:
        raise
    except (RuntimeError, ValueError) as error:
        raise InteropError(f"language model: {str(error).splitlines()[0]}") from None
    return language


def _vision_architecture(config: dict[str, Any]) -> dict[str, Any]:
    from medzoo.plugins.vision.clip import ClipVisionEncoder

    return {key: config[key] for key in ClipVisionEncoder.architecture_keys if key in config}


def _build_vision(state: dict[str, torch.Tensor], tower_source: str | None, options: dict[str, Any],
                  report: ImportReport):
    """The CLIP tower: the checkpoint's weights on the architecture of ``mm_vision_tower``, or, when the checkpoint
    has none, the weights of ``mm_vision_tower`` itself. There is never a model without a vision tower."""
    from medzoo.plugins.vision.clip import ClipVisionEncoder

    if not tower_source:
        raise InteropError("config.json has no mm_vision_tower; pass --vision-tower (a CLIP hub id or directory)")
    if not state:
        try:
            vision = ClipVisionEncoder.from_pretrained(tower_source, **options)
        except MedzooError as error:
            raise InteropError(f"the checkpoint holds no vision tower weights and {error}") from None
        report.vision_pretrained = tower_source
        report.vision_source = f"not in the checkpoint: loaded from mm_vision_tower {tower_source}"
        report.notes.append(f"vision tower weights were not in the checkpoint; loaded them from {tower_source}")
        return vision
    report.vision_pretrained = tower_source
    architecture = _tower_architecture(tower_source, report)
    try:
        statistics = ClipVisionEncoder.processor_statistics(tower_source, architecture["image_size"])
    except Exception:  # offline without a cached copy: CLIP's statistics, which every LLaVA tower uses
        statistics = {}
        report.notes.append(f"image mean/std of {tower_source} unavailable; used CLIP's")
    mean = statistics.get("image_mean", ClipVisionEncoder.default_mean)
    std = statistics.get("image_std", ClipVisionEncoder.default_std)
    architecture.update(image_mean=list(mean), image_std=list(std))
    report.vision_source = "checkpoint"
    return _load_vision(architecture, state, options)


def _tower_architecture(tower_source: str, report: ImportReport) -> dict[str, Any]:
    from transformers import CLIPVisionConfig

    try:
        return _vision_architecture(CLIPVisionConfig.from_pretrained(tower_source).to_dict())
    except (OSError, ValueError) as error:
        if tower_source in KNOWN_VISION_TOWERS:
            report.notes.append(f"config of {tower_source} unavailable; used its known architecture")
            return dict(KNOWN_VISION_TOWERS[tower_source])
        raise InteropError(
            f"cannot read the vision tower config of {tower_source!r}: {str(error).splitlines()[0]}; "
            "pass --vision-tower (a CLIP hub id or local directory)"
        ) from None


def _load_vision(architecture: dict[str, Any], state: dict[str, torch.Tensor], options: dict[str, Any]):
    from accelerate import init_empty_weights

    from medzoo.plugins.vision.clip import ClipVisionEncoder

    with init_empty_weights(include_buffers=False):
        vision = ClipVisionEncoder.from_config(architecture, **options)
    _load_strict(vision.model, state, "vision tower")
    return vision


def _build_connector(projector: str, state: dict[str, torch.Tensor], vision, language):
    connector = build_connector({"name": projector}, vision.hidden_size, language.hidden_size, vision.num_tokens)
    _load_strict(connector, state, f"connector {projector}")
    return connector


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = set(module.state_dict())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        detail = f"missing {len(missing)} (first: {missing[0]})" if missing else ""
        if unexpected:
            detail += ("; " if detail else "") + f"unexpected {len(unexpected)} (first: {unexpected[0]})"
        raise InteropError(f"{what}: the checkpoint's tensors do not fit: {detail}")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise InteropError(f"{what}: {lines[0] if lines else str(error).splitlines()[0]}") from None
    meta = [name for name, tensor in [*module.named_parameters(), *module.named_buffers()] if tensor.is_meta]
    if meta:
        raise InteropError(f"{what}: {len(meta)} tensor(s) were not loaded (first: {meta[0]})")


def _model_spec(vision: str, options: dict[str, Any], projector: str, language, markup: str) -> dict[str, Any]:
    return {
        "vision": {"name": vision, "options": dict(options)},
        "connector": {"name": projector},
        "language": {"name": language.component_name, "template": language.template_name},
        "image_markup": markup,
        "attention": "sdpa",
    }


def _checkpoint_dtype(config: dict[str, Any]) -> str:
    value = config.get("torch_dtype") or config.get("dtype") or "float32"
    return value if value in DTYPE_NAMES else "float32"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InteropError(f"{path}: invalid JSON: {error.msg}") from None
    return data if isinstance(data, dict) else {}


def recipe_text(model: MultimodalModel, report: ImportReport, output: Path) -> str:
    """A recipe whose ``model`` section rebuilds the imported model from the directory (fine-tune from here)."""
    spec = model.spec
    tower = report.vision_pretrained or str((output / VISION_TOWER_DIR).resolve())
    vision = {"name": spec["vision"]["name"], "pretrained": tower, "options": spec["vision"]["options"]}
    recipe = {
        "name": output.name,
        "description": f"imported from {report.source} ({FORMATS[report.format].description})",
        "model": {
            "vision": vision,
            "connector": {"name": spec["connector"]["name"], "pretrained": str(output.resolve())},
            "language": {"name": spec["language"]["name"], "template": spec["language"]["template"],
                         "pretrained": str((output / "language").resolve())},
            "image_markup": spec["image_markup"],
            "dtype": spec["dtype"],
        },
    }
    header = (
        f"# written by `medzoo import` from {report.source} (format {report.format}).\n"
        f"# The model itself loads with MultimodalModel.from_pretrained({str(output)!r}); this recipe's model\n"
        "# section names the same components so stages added below fine-tune from the imported weights.\n"
        "# LLaVA keeps its vision tower frozen, so the recipe names the tower the checkpoint was trained with.\n"
    )
    return header + yaml.safe_dump(recipe, sort_keys=False)


def _write_vision_tower(model: MultimodalModel, directory: Path) -> None:
    """The CLIP tower in the transformers layout with its image statistics (loadable by the ``clip`` plugin)."""
    vision = model.vision
    vision.model.save_pretrained(str(directory))
    processor = {
        "image_processor_type": "CLIPImageProcessor",
        "crop_size": {"height": vision.image_size, "width": vision.image_size},
        "size": {"shortest_edge": vision.image_size},
        "image_mean": list(vision.image_mean),
        "image_std": list(vision.image_std),
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
