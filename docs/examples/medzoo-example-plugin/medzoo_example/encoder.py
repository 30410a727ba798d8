"""``conv-vit``: the medzoo vision tower around ``ConvStemViT``, built from a config or loaded from a local
directory written by ``save_pretrained`` (``config.json`` + ``model.safetensors``).

``medzoo.VisionTowerBase`` does the rest: image statistics, image options and the transform, running the blocks
only up to ``feature_layer``, ``feature_select``, activation checkpointing, ``from_config`` (with ``dtype``) and
``architecture_config``."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medzoo import (
    TINY_VIT_CONFIG,
    FeatureSelect,
    PluginError,
    RecipeError,
    VisionTowerBase,
    did_you_mean,
    resolve_dtype,
)
from medzoo_example.network import ConvStemViT, ConvViTConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
ARCHITECTURE_KEYS = tuple(field.name for field in fields(ConvViTConfig))


class ConvViTEncoder(VisionTowerBase):
    """Hidden states are numbered as in transformers: 0 is the embedding output, ``i`` the output of block
    ``i - 1``; ``self.model`` is the :class:`ConvStemViT`."""

    name = "conv-vit"
    default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
    tiny = TINY_VIT_CONFIG  # ConvViTConfig's field names are CLIPVisionConfig's

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def build_model(cls, config: dict[str, Any]) -> ConvStemViT:
        """Random weights; ``config`` holds ``ConvViTConfig`` fields (``image_mean`` / ``image_std`` are taken
        off before)."""
        for key in config:
            if key not in ARCHITECTURE_KEYS:
                raise RecipeError(
                    f"vision encoder {cls.name!r}: unknown config key {key!r}{did_you_mean(key, ARCHITECTURE_KEYS)}; "
                    f"expected {', '.join(ARCHITECTURE_KEYS)}, image_mean or image_std"
                )
        architecture = ConvViTConfig(**config)
        problems = architecture.problems()
        if problems:
            raise RecipeError(f"vision encoder {cls.name!r}: {'; '.join(problems)}")
        return ConvStemViT(architecture)

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **_: Any,
    ) -> ConvViTEncoder:
        """Load a directory written by ``save_pretrained``; every weight must be present and fit."""
        directory = Path(source).expanduser()
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not (config_path.is_file() and weights_path.is_file()):
            raise PluginError(
                f"vision encoder {cls.name!r}: {source!r} is not a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
            )
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise PluginError(f"{config_path}: unreadable config ({error})") from None
        try:
            encoder = cls.from_config(config, feature_layer, feature_select, image_aspect)
        except (RecipeError, TypeError) as error:
            raise PluginError(f"{config_path}: {error}") from None
        state = load_file(str(weights_path))
        result = encoder.model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise PluginError(
                f"{weights_path}: weights do not fit the config (missing {list(result.missing_keys)[:3]}, "
                f"unexpected {list(result.unexpected_keys)[:3]})"
            )
        return encoder.to(resolve_dtype(dtype)).eval()

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors``, loadable by ``from_pretrained(directory)``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(self.architecture_config(), indent=2), encoding="utf-8")
        save_file(
            {key: value.contiguous() for key, value in self.model.state_dict().items()},
            str(path / WEIGHTS_FILE),
        )

    def architecture(self) -> dict[str, Any]:
        return asdict(self.model.config)

    # -- the network ------------------------------------------------------------------------------------------
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.embed(pixel_values)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size
