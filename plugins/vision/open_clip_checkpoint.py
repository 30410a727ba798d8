"""Finding and reading an open_clip checkpoint: a local folder in the hub layout (``open_clip_config.json`` plus
``open_clip_pytorch_model.bin`` / ``.safetensors``), a hub id (``[hf-hub:]org/name``) or a built-in architecture
with a pretrained tag (``ViT-B-16:openai``); a damaged or missing file is a one-line :class:`PluginError`."""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from medzoo import (
    PluginError,
    RecipeError,
    check_safetensors,
    did_you_mean,
    first_line,
    read_json,
    shape_mismatch,
)

HF_HUB_PREFIX = "hf-hub:"
OPEN_CLIP_CONFIG = "open_clip_config.json"
# open_clip's own preference order for weights in a hub-layout directory.
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
# The model_cfg keys the vision tower is built from (the text tower's are dropped).
VISION_MODEL_KEYS = ("embed_dim", "vision_cfg", "quick_gelu")


@dataclass(frozen=True)
class OpenClipCheckpoint:
    """Where an open_clip model's config and weights are."""

    #: the source as given (in messages)
    source: str
    model_cfg: dict[str, Any]
    #: open_clip's ``PreprocessCfg`` merged with the checkpoint's ``preprocess_cfg``
    preprocess_cfg: dict[str, Any]
    weights: Path
    #: what holds the config (in messages): the ``open_clip_config.json`` path, or ``architecture:tag``
    config_source: str


def resolve_checkpoint(source: str, encoder: str) -> OpenClipCheckpoint:
    """The checkpoint of a hub-layout folder, a hub id or ``architecture:tag`` (``encoder``: in messages)."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    name, _, tag = source.partition(":")
    if tag and name not in ("hf-hub", "local-dir") and "/" not in name and not Path(source).is_dir():
        return builtin_checkpoint(source, name, tag, encoder)
    if source.startswith("local-dir:"):
        source = source[len("local-dir:") :]
    config_path, weights_path = locate_checkpoint(source, encoder)
    config = read_open_clip_config(config_path)
    if not isinstance(config["model_cfg"].get("vision_cfg"), dict):
        raise PluginError(f"{config_path}: model_cfg has no 'vision_cfg' object; expected an open_clip model config")
    preprocess = merge_preprocess_dict(asdict(PreprocessCfg()), config.get("preprocess_cfg") or {})
    return OpenClipCheckpoint(source, config["model_cfg"], preprocess, weights_path, str(config_path))


def locate_checkpoint(source: str, encoder: str) -> tuple[Path, Path]:
    """``(open_clip_config.json, weights)`` for a local hub-layout directory or a hub id (downloaded)."""
    directory = Path(source).expanduser()
    if directory.is_dir():
        config_path = directory / OPEN_CLIP_CONFIG
        if not config_path.is_file():
            raise PluginError(f"{directory}: no {OPEN_CLIP_CONFIG}; expected an open_clip model directory")
        for name in WEIGHT_FILES:
            if (directory / name).is_file():
                return config_path, directory / name
        raise PluginError(f"{directory}: no open_clip weights; expected one of {', '.join(WEIGHT_FILES)}")
    from open_clip.pretrained import download_pretrained_from_hf

    hub_id = source[len(HF_HUB_PREFIX) :] if source.startswith(HF_HUB_PREFIX) else source
    try:
        config_path = Path(download_pretrained_from_hf(hub_id, filename=OPEN_CLIP_CONFIG))
        weights_path = Path(download_pretrained_from_hf(hub_id))
    except Exception as error:  # huggingface_hub raises many types (offline, missing repo, missing file)
        raise PluginError(
            f"vision encoder {encoder!r}: {source!r} is neither a local directory nor a reachable hub id "
            f"({type(error).__name__})"
        ) from error
    return config_path, weights_path


def builtin_checkpoint(source: str, name: str, tag: str, encoder: str) -> OpenClipCheckpoint:
    """A built-in architecture's model_cfg with a pretrained tag's weights (downloaded) and preprocessing."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg, list_pretrained_tags_by_model
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    try:
        model_cfg = builtin_model_cfg(name, encoder)
    except RecipeError as error:
        raise PluginError(str(error)) from None
    pretrained_cfg = get_pretrained_cfg(name, tag)
    if not pretrained_cfg:
        tags = ", ".join(list_pretrained_tags_by_model(name)) or "none"
        raise PluginError(f"vision encoder {encoder!r}: {name!r} has no pretrained tag {tag!r}; expected one of {tags}")
    if pretrained_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True  # trained with QuickGELU (OpenAI's weights)
    try:
        weights = download_pretrained(pretrained_cfg)
    except Exception as error:  # huggingface_hub / urllib raise many types (offline, missing file)
        raise PluginError(
            f"vision encoder {encoder!r}: cannot download {name}:{tag} ({type(error).__name__}: {first_line(error)})"
        ) from error
    preprocess = merge_preprocess_dict(asdict(PreprocessCfg()), pretrained_cfg)
    return OpenClipCheckpoint(source, model_cfg, preprocess, Path(weights), source)


def builtin_model_cfg(name: str, encoder: str) -> dict[str, Any]:
    """The vision part of a built-in open_clip architecture's model_cfg."""
    import open_clip

    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise RecipeError(
            f"vision encoder {encoder!r}: unknown open_clip architecture {name!r}"
            f"{did_you_mean(name, open_clip.list_models())}"
        )
    return {key: model_cfg[key] for key in VISION_MODEL_KEYS if key in model_cfg}


def read_open_clip_config(path: Path) -> dict[str, Any]:
    config = read_json(path, PluginError, "an open_clip config")
    if not isinstance(config.get("model_cfg"), dict):
        raise PluginError(f"{path}: expected a JSON object with a 'model_cfg' object")
    return config


def read_open_clip_weights(path: Path) -> dict[str, torch.Tensor]:
    """An open_clip checkpoint's state dict (a training checkpoint's ``state_dict``, DDP's ``module.`` prefix
    removed); a truncated or damaged file is a one-line PluginError naming it."""
    if path.suffix == ".safetensors":
        check_safetensors(path, PluginError, "open_clip weights")
    from open_clip.factory import load_state_dict

    try:
        state = load_state_dict(str(path))
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, SafetensorError) as error:
        raise PluginError(
            f"{path}: not a readable open_clip checkpoint ({first_line(error)}); the file is truncated or damaged"
        ) from None
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # a training checkpoint
        state = state["state_dict"]
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_prefixed_weights(module: nn.Module, weights_path: Path, prefix: str, holder: str) -> None:
    """The checkpoint's ``prefix*`` tensors into ``module``, strictly; a missing or misshapen one is one line
    naming the file, the tensor and ``holder`` (what expected it)."""
    state = read_open_clip_weights(weights_path)
    own = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not own:
        raise PluginError(f"{weights_path}: no '{prefix}*' weights; expected an open_clip checkpoint")
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    mismatch = shape_mismatch(expected, {key: tuple(value.shape) for key, value in own.items()})
    if mismatch:
        key, found, wanted = mismatch
        raise PluginError(f"{weights_path}: tensor {prefix + key!r} has shape {list(found)}, {holder} expects "
                          f"{list(wanted)}")
    incompatible = module.load_state_dict(own, strict=False)
    if incompatible.missing_keys or incompatible.unexpected_keys:
        raise PluginError(
            f"{weights_path}: the {prefix}* weights do not fit {holder} "
            f"(missing {list(incompatible.missing_keys)[:3]}, unexpected {list(incompatible.unexpected_keys)[:3]})"
        )
