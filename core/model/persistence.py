"""Saving and loading medzoo model directories.

Layout: ``medzoo_model.json`` (how to rebuild: component plugins, sources, architecture configs, markup),
``vision.safetensors`` / ``connector.safetensors`` / ``language/`` (Hugging Face layout with the tokenizer) for every
module saved in full, and ``adapters/<module>/`` for adapters that are not merged (written by the tuning strategy that owns them:
PEFT format for LoRA).
A module built from pretrained weights and never trained is not copied: its source is recorded instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medzoo.core.atomic_writes import atomic_directory, save_tensors, write_file
from medzoo.core.checked_reads import (
    check_safetensors,
    first_line,
    json_type,
    load_weights_into,
    read_json,
    read_safetensors,
)
from medzoo.core.dtypes import torch_dtype
from medzoo.core.errors import MedzooError, PluginError
from medzoo.core.file_io.storage import tensor_bytes, writing
from medzoo.core.interfaces.connector import Connector
from medzoo.core.interfaces.language_model import LanguageModel
from medzoo.core.interfaces.vision_encoder import VisionEncoder
from medzoo.core.model.adapters import (
    LEGACY_ADAPTER_STRATEGY,
    adapted_modules,
    tunable_modules,
    tuning_strategy,
)
from medzoo.core.model.components import (
    build_component,
    build_connector,
    connector_input_width,
    wants_newline,
)
from medzoo.core.plugin_system.manager import components

if TYPE_CHECKING:  # annotations only: the model class calls this module to save and load itself
    from medzoo.core.model.multimodal import MultimodalModel

MANIFEST = "medzoo_model.json"
FORMAT = "medzoo-model"
FORMAT_VERSION = 1

#: writes files of its own into a model folder while it is saved: ``(staging, directory, manifest, model)``,
#: ``staging`` being the folder about to replace ``directory`` whole (the application's model card, for one)
FolderFiles = Callable[[Path, Path, dict[str, Any], "MultimodalModel"], None]


def modules_to_save(model: MultimodalModel) -> set[str]:
    """Random-init modules, modules trained beyond adapters, and a language model whose vocabulary grew."""
    spec = model.spec
    shrink = spec.get("shrink", False)
    chosen = set(getattr(model, "trained_modules", set()))
    for name in ("vision", "connector", "language"):
        if shrink or not spec.get(name, {}).get("pretrained"):
            chosen.add(name)
    base_vocab = getattr(model.language, "base_vocab_size", None)
    if base_vocab is not None and len(model.tokenizer) != base_vocab:
        chosen.add("language")
    return chosen


def _base_state_dict(module: torch.nn.Module, adapters: dict[str, tuple], name: str) -> dict[str, torch.Tensor]:
    """The module's weights without adapter tensors (the owning strategy knows which those are)."""
    if name in adapters:
        return adapters[name][1].base_state_dict(module)
    return {key: value.detach().contiguous() for key, value in module.state_dict().items()}


def _manifest(model: MultimodalModel, saved: set[str], extra: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model.spec,
        "architecture": {
            "vision": model.vision.architecture_config(),
            "connector": model.connector.options(),
            "language": model.language.architecture_config(),
        },
        "saved_modules": sorted(saved),
        "adapters": {},
        **(extra or {}),
    }


def _save_modules(model: MultimodalModel, staging: Path, saved: set[str], adapters: dict[str, tuple]) -> None:
    """The chosen modules' weights (without adapter tensors) and the language model's config and tokenizer."""
    for name in ("vision", "connector"):
        if name in saved:
            module = getattr(model, name)
            save_tensors(_base_state_dict(module, adapters, name), staging / f"{name}.safetensors")
    if "language" in saved and "language" in adapters:
        # the base weights without adapters; the adapters go to adapters/language
        model.language.save_pretrained(str(staging / "language"), save_weights=False)
        base = _base_state_dict(model.language.model, adapters, "language")
        save_tensors(base, staging / "language" / "base_weights.safetensors")
    else:
        weights = tensor_bytes(dict(model.language.named_parameters())) if "language" in saved else None
        with writing(staging / "language" / "model.safetensors", weights):  # transformers' own save_pretrained
            model.language.save_pretrained(str(staging / "language"), save_weights="language" in saved)


def save_model(model: MultimodalModel, directory: str | Path, extra: dict[str, Any] | None = None,
               folder_files: FolderFiles | None = None) -> Path:
    """Write the model directory atomically (a temporary sibling renamed into place); ``folder_files`` adds its
    own files to it before the rename."""
    directory = Path(directory)
    with atomic_directory(directory, owned_marker=MANIFEST, what="a model") as staging:
        saved = modules_to_save(model)
        adapters = adapted_modules(model)
        manifest = _manifest(model, saved, extra)
        _save_modules(model, staging, saved, adapters)
        base_model = model.spec.get("language", {}).get("pretrained")
        for name, (strategy_name, strategy, module) in adapters.items():
            where = f"adapters/{name}"
            with writing(staging / where, tensor_bytes({k: v for k, v in module.state_dict().items() if "lora_" in k})):
                info = strategy.save_adapters(module, staging / where, name, base_model if name == "language" else None)
            manifest["adapters"][name] = {"path": where, "strategy": strategy_name, **info}
        write_file(staging / MANIFEST, json.dumps(manifest, indent=2, default=str))
        if folder_files is not None:
            folder_files(staging, directory, json.loads(json.dumps(manifest, default=str)), model)
    return directory


def load_model(model_class: type[MultimodalModel], directory: str | Path, dtype: str | None = None) -> MultimodalModel:
    """Rebuild a model saved by :func:`save_model` as a ``model_class`` (``MultimodalModel.from_pretrained`` passes
    its class): full modules from the directory, others from their source."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    spec, saved = manifest["model"], set(manifest["saved_modules"])
    vision = _load_vision(directory, manifest, saved)
    language = _load_language(directory, manifest, saved)
    connector = _load_connector(directory, manifest, saved, vision, language)
    model = model_class(vision, connector, language, spec.get("image_markup", "placeholder"), spec=spec)
    model.trained_modules = saved & {"vision", "connector", "language"}
    _load_adapters(directory, manifest, model)
    model.loaded_from = directory  # the card of a model saved from this one finds its run folder
    return model.to(torch_dtype(dtype or spec.get("dtype", "float32"))).eval()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The model directory's manifest, checked to be one medzoo wrote and to hold what loading needs."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise MedzooError(f"{directory}: not a medzoo model directory (no {MANIFEST})")
    manifest = read_json(manifest_path, MedzooError, "a medzoo model manifest")
    if manifest.get("format") != FORMAT:
        raise MedzooError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    _check_manifest(manifest, manifest_path)
    return manifest


_MANIFEST_FIELDS: tuple[tuple[str, type, str], ...] = (
    ("model", dict, "the model's recipe section"),
    ("model.vision", dict, "the vision encoder's recipe section"),
    ("model.vision.name", str, "a vision encoder plugin name"),
    ("model.connector", dict, "the connector's recipe section"),
    ("model.connector.name", str, "a connector plugin name"),
    ("model.language", dict, "the language model's recipe section"),
    ("model.language.name", str, "a language model plugin name"),
    ("architecture", dict, "the modules' architecture configs"),
    ("architecture.vision", dict, "the vision encoder's architecture config"),
    ("architecture.language", dict, "the language model's architecture config"),
    ("saved_modules", list, "the names of the modules saved in full"),
)


def _check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Every field loading reads is present with the right JSON type (a damaged manifest fails here, by key)."""
    for key, kind, meaning in _MANIFEST_FIELDS:
        value: Any = manifest
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind):
            found = "missing" if value is None else f"a JSON {json_type(value)}"
            raise MedzooError(f"{path}: key {key!r} is {found}; expected a JSON {json_type(kind())} ({meaning})")
    unknown = [name for name in manifest["saved_modules"] if name not in ("vision", "connector", "language")]
    if unknown:
        raise MedzooError(f"{path}: key 'saved_modules' holds {unknown[0]!r}; expected vision, connector or language")
    language = manifest["model"]["language"]
    if "language" not in manifest["saved_modules"] and not isinstance(language.get("pretrained"), str):
        raise MedzooError(
            f"{path}: key 'model.language.pretrained' is missing and 'saved_modules' lacks language; "
            f"expected one of them (where the language model's weights come from)"
        )
    connector = manifest["architecture"].get("connector")
    if connector is not None and not isinstance(connector, dict):
        raise MedzooError(f"{path}: key 'architecture.connector' is a JSON {json_type(connector)}; expected an object")
    adapters = manifest.get("adapters", {})
    if not isinstance(adapters, dict) or not all(
        isinstance(info, dict) and isinstance(info.get("path"), str) for info in adapters.values()
    ):
        raise MedzooError(f"{path}: key 'adapters' must map module names to objects with a 'path' string")


def _load_vision(directory: Path, manifest: dict[str, Any], saved: set[str]) -> VisionEncoder:
    spec = manifest["model"]["vision"]
    if "vision" not in saved:
        return build_component("vision_encoder", spec, shrink=False)
    vision_cls = components().get("vision_encoder", spec["name"]).factory
    vision = vision_cls.from_config(manifest["architecture"]["vision"], **spec.get("options", {}))
    path = directory / "vision.safetensors"
    weights = read_safetensors(path, MedzooError, f"the vision encoder's weights (listed as saved in {MANIFEST})")
    load_weights_into(vision, weights, path, MedzooError, f"the vision encoder described in {MANIFEST}")
    return vision


def _load_language(directory: Path, manifest: dict[str, Any], saved: set[str]) -> LanguageModel:
    model_spec = manifest["model"]
    spec = model_spec["language"]
    language_cls = components().get("language_model", spec["name"]).factory
    options = {
        **spec.get("options", {}),
        "template": spec.get("template"),
        "attention": model_spec.get("attention", "sdpa"),
    }
    saved_here = directory / "language"
    if not saved_here.is_dir():
        raise MedzooError(f"{saved_here}: missing; expected the language model's folder (config and tokenizer)")
    if "language" not in saved:
        return language_cls.from_pretrained(spec["pretrained"], tokenizer=str(saved_here), **options)
    base_weights = saved_here / "base_weights.safetensors"
    what = f"the language model's weights without adapters (listed as saved in {MANIFEST})"
    if not base_weights.is_file():
        if "language" in manifest.get("adapters", {}) and not _has_full_weights(saved_here):
            raise MedzooError(f"{base_weights}: missing; expected {what}")
        _check_language_weights(saved_here)
        return language_cls.from_pretrained(str(saved_here), **options)
    # saved beside adapters: the architecture config plus the weights without the adapter tensors
    check_safetensors(base_weights, MedzooError, what)
    language = language_cls.from_config({**manifest["architecture"]["language"], "tokenizer": str(saved_here)}, **options)
    weights = read_safetensors(base_weights, MedzooError, what)
    load_weights_into(language.model, weights, base_weights, MedzooError, f"the language model described in {MANIFEST}")
    return language


_LANGUAGE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _has_full_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _LANGUAGE_WEIGHTS)


def _check_language_weights(folder: Path) -> None:
    """The saved language model has its weights, and every safetensors file in its folder has a whole header."""
    if not _has_full_weights(folder):
        raise MedzooError(
            f"{folder / _LANGUAGE_WEIGHTS[0]}: missing; expected the language model's weights "
            f"(listed as saved in {MANIFEST}; copy the whole model folder)"
        )
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path, MedzooError, "language model weights")


def _load_connector(
    directory: Path, manifest: dict[str, Any], saved: set[str], vision: VisionEncoder, language: LanguageModel
) -> Connector:
    spec = manifest["model"]["connector"]
    options = manifest["architecture"]["connector"] or spec.get("options", {})
    connector = build_connector(
        {**spec, "pretrained": None, "options": options},
        connector_input_width(manifest["model"], vision.hidden_size), language.hidden_size, vision.num_tokens,
        wants_newline(manifest["model"]),
    )
    if "connector" in saved:
        path = directory / "connector.safetensors"
        weights = read_safetensors(path, MedzooError, f"the connector's weights (listed as saved in {MANIFEST})")
        load_weights_into(connector, weights, path, MedzooError, f"the connector described in {MANIFEST}")
    return connector


def _load_adapters(directory: Path, manifest: dict[str, Any], model: MultimodalModel) -> None:
    """Inject each saved adapter through the tuning strategy that wrote it."""
    modules = tunable_modules(model)
    for name, info in manifest.get("adapters", {}).items():
        if name not in modules:
            raise MedzooError(f"{directory / MANIFEST}: adapters for unknown module {name!r}; expected one of {sorted(modules)}")
        try:
            strategy = tuning_strategy(info.get("strategy", LEGACY_ADAPTER_STRATEGY))
        except PluginError as error:
            raise MedzooError(f"{directory / MANIFEST}: key 'adapters.{name}.strategy': {error}") from None
        folder = directory / info["path"]
        if not folder.is_dir():
            raise MedzooError(f"{folder}: missing; expected the {name} adapters listed in {MANIFEST}")
        for path in sorted(folder.glob("*.safetensors")):
            check_safetensors(path, MedzooError, f"{name} adapter weights")
        try:
            strategy.load_adapters(modules[name], folder, name)
        except MedzooError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            detail = _state_dict_detail(error)
            raise MedzooError(f"{folder}: {name} adapters do not load into the model ({detail})") from None


def _state_dict_detail(error: BaseException) -> str:
    """The informative line of a ``load_state_dict`` error (its first size mismatch or missing key)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))), None)
    text = detail or first_line(error)
    return text if len(text) <= 300 else text[:297] + "..."
