"""SigLIP vision tower (transformers ``SiglipVisionModel``): SigLIP, fixed-resolution SigLIP 2 and MedSigLIP.

As ColonGPT's ``SiglipVisionTower`` (``hidden_states[-2]``, every token), features are one hidden state of the
encoder: 0 is the embedding output, ``i`` the output of block ``i - 1``; only the blocks needed run, and the
``post_layernorm`` and the attention-pooling head are never applied (the head is not even built).

SigLIP has no class token, so ``feature_select`` ``patch`` keeps every token and ``cls_patch`` is a
:class:`RecipeError` (rather than silently meaning ``patch``).

Preprocessing is ``SiglipImageProcessor``'s: both edges resized to the tower's square size (bicubic, no crop),
rescaled by 1/255 and normalised with mean = std = 0.5 (or the statistics of the source's
``preprocessor_config.json``); ``image_aspect`` ``pad`` runs LLaVA's ``expand2square`` first (ColonGPT's
``image_aspect_ratio: pad``), ``crop`` is the processor alone (a non-square image is squashed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from medzoo.core.errors import PluginError
from medzoo.core.interfaces.vision_encoder import FeatureSelect
from medzoo.core.model.activation_checkpointing import set_activation_checkpointing
from medzoo.core.model.image_processing import ImageTransform
from medzoo.plugins.vision import blocks_to_run, build_image_transform, image_options
from medzoo.plugins.vision.clip import resolve_dtype
from medzoo.plugins.vision.hf_loading import (
    image_statistics,
    load_vision_model,
    read_preprocessor,
    square_side,
)
from medzoo.plugins.vision.tokens import require_class_token
from medzoo.plugins.vision.transformers_tower import TransformersVisionTower

if TYPE_CHECKING:
    from transformers import SiglipVisionModel

SIGLIP_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SIGLIP_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
SIGLIP_HUB_IDS = ("google/siglip-so400m-patch14-384", "google/siglip2-so400m-patch14-384", "google/medsiglip-448")
# The SiglipVisionConfig fields that define the architecture (what ``architecture_config`` returns).
ARCHITECTURE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
)


class SiglipVisionEncoder(TransformersVisionTower):
    """A SigLIP vision tower; ``forward`` returns ``hidden_states[feature_layer]`` (every patch token)."""

    architecture_keys = ARCHITECTURE_KEYS

    def __init__(
        self,
        model: SiglipVisionModel,
        image_mean: Sequence[float] = SIGLIP_MEAN,
        image_std: Sequence[float] = SIGLIP_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        require_class_token("siglip", feature_select, False, "SigLIP pools with an attention head")
        self.model = model
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.num_blocks = blocks_to_run(feature_layer, model.config.num_hidden_layers, "siglip")
        self.image_options = image_options(image_preprocessing, encoder="siglip")
        self._transform = build_image_transform(
            "siglip", self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options,
            resize="square",
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> SiglipVisionEncoder:
        """Load from a hub id (``google/siglip-so400m-patch14-384``, ``google/medsiglip-448``) or a local folder.

        A full SigLIP checkpoint (text + vision) works: only the vision weights are taken (without the pooling
        head), and every one of them must be present. The statistics come from ``preprocessor_config.json``.
        """
        from transformers import SiglipVisionConfig, SiglipVisionModel

        model = load_vision_model(
            "siglip", source, SiglipVisionModel, SiglipVisionConfig, dtype, "SigLIP", vision_use_head=False
        )
        mean, std = read_siglip_statistics(source, model.config.image_size)
        return cls(model, mean, std, feature_layer, feature_select, image_aspect, **image_options(options))

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> SiglipVisionEncoder:
        """Random tower from ``SiglipVisionConfig(**config)`` (no pooling head); optional ``image_mean`` /
        ``image_std`` keys (default 0.5) set the image statistics."""
        from transformers import SiglipVisionConfig, SiglipVisionModel

        config = dict(config)
        mean = config.pop("image_mean", SIGLIP_MEAN)
        std = config.pop("image_std", SIGLIP_STD)
        model = SiglipVisionModel(SiglipVisionConfig(**config, vision_use_head=False)).to(resolve_dtype(dtype))
        return cls(model, mean, std, feature_layer, feature_select, image_aspect, **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        }

    def architecture_config(self) -> dict[str, Any]:
        config = self.config_architecture()
        return {**config, "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def has_cls_token(self) -> bool:
        return False

    @property
    def block_class(self) -> type[nn.Module]:
        from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

        return SiglipEncoderLayer

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.model.embeddings(pixel_values.to(self.model.dtype))
        for layer in self.model.encoder.layers[: self.num_blocks]:
            hidden = layer(hidden, None)
        return hidden

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        set_activation_checkpointing(self.model, enabled)


def read_siglip_statistics(source: str, image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std from the source's ``preprocessor_config.json`` (else 0.5); its ``size`` must be the tower's."""
    found = read_preprocessor(source)
    if found is None:
        return SIGLIP_MEAN, SIGLIP_STD
    processor, path = found
    side = square_side(processor.get("size"), path, "size")
    if side is not None and side != image_size:
        raise PluginError(f"{path}: size {side} does not match the vision tower's image_size {image_size}")
    return image_statistics(processor, path, SIGLIP_MEAN, SIGLIP_STD)
