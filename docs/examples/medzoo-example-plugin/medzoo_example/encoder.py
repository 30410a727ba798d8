"""``conv-vit``: the medzoo VisionEncoder around ``ConvStemViT``, built from a config or loaded from a local
directory written by ``save_pretrained`` (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.checkpoint import checkpoint

from medzoo import (
    FeatureSelect,
    ImageTransform,
    PluginError,
    RecipeError,
    VisionEncoder,
    blocks_to_run,
    did_you_mean,
)
from medzoo_example.network import Block, ConvStemViT, ConvViTConfig

NAME = "conv-vit"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
ARCHITECTURE_KEYS = tuple(field.name for field in fields(ConvViTConfig))


class ConvViTEncoder(VisionEncoder):
    """Hidden states are numbered as in transformers: 0 is the embedding output, ``i`` the output of block
    ``i - 1``; ``forward`` runs only the blocks up to ``feature_layer`` and applies ``feature_select``."""

    def __init__(
        self,
        network: ConvStemViT,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
    ) -> None:
        super().__init__(feature_layer, feature_select, image_aspect)
        self.network = network
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.num_blocks = blocks_to_run(feature_layer, len(network.blocks), NAME)
        self.gradient_checkpointing = False
        self._transform = ImageTransform(self.image_size, self.image_mean, self.image_std, image_aspect)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **_: Any,
    ) -> ConvViTEncoder:
        """Random weights; ``config`` holds ``ConvViTConfig`` fields plus optional ``image_mean`` / ``image_std``."""
        options = dict(config)
        mean = options.pop("image_mean", IMAGENET_MEAN)
        std = options.pop("image_std", IMAGENET_STD)
        for key in options:
            if key not in ARCHITECTURE_KEYS:
                raise RecipeError(
                    f"vision encoder {NAME!r}: unknown config key {key!r}{did_you_mean(key, ARCHITECTURE_KEYS)}; "
                    f"expected {', '.join(ARCHITECTURE_KEYS)}, image_mean or image_std"
                )
        architecture = ConvViTConfig(**options)
        problems = architecture.problems()
        if problems:
            raise RecipeError(f"vision encoder {NAME!r}: {'; '.join(problems)}")
        network = ConvStemViT(architecture).to(as_dtype(dtype))
        return cls(network, mean, std, feature_layer, feature_select, image_aspect)

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
                f"vision encoder {NAME!r}: {source!r} is not a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
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
        result = encoder.network.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise PluginError(
                f"{weights_path}: weights do not fit the config (missing {list(result.missing_keys)[:3]}, "
                f"unexpected {list(result.unexpected_keys)[:3]})"
            )
        return encoder.to(as_dtype(dtype)).eval()

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors``, loadable by ``from_pretrained(directory)``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(self.architecture_config(), indent=2), encoding="utf-8")
        save_file(
            {key: value.contiguous() for key, value in self.network.state_dict().items()},
            str(path / WEIGHTS_FILE),
        )

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        }

    def architecture_config(self) -> dict[str, Any]:
        return {
            **asdict(self.network.config),
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }

    # -- the VisionEncoder interface --------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.network.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.network.config.image_size

    @property
    def patch_size(self) -> int:
        return self.network.config.patch_size

    @property
    def block_class(self) -> type[nn.Module]:
        return Block

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.network.embed(pixel_values.to(self.network.pos_embed.dtype))
        for block in self.network.blocks[: self.num_blocks]:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden = checkpoint(block, hidden, use_reentrant=False)
            else:
                hidden = block(hidden)
        return self.select(hidden)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.gradient_checkpointing = enabled


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """``None`` -> float32; a name such as ``"bfloat16"`` -> the torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype or torch.float32
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise RecipeError(
            f"vision encoder {NAME!r}: unknown dtype {dtype!r}; expected float32, bfloat16 or float16"
        )
    return resolved
