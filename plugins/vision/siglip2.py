"""SigLIP 2 NaFlex vision tower (transformers ``Siglip2VisionModel``) used at one fixed square resolution.

NaFlex takes pre-cut patches ``[B, max_patches, 3 * p * p]`` with a ``pixel_attention_mask`` and each image's
``spatial_shapes`` (its patch grid, chosen per image to keep the aspect ratio). What is fixed here: every image is
resized (after LLaVA's optional ``expand2square``) to ``image_size x image_size``, so every image has the same
``g x g`` grid (``g = image_size / patch_size``), no padding patches (the mask is all ones, so no mask is passed)
and ``spatial_shapes = (g, g)``. The encoder cuts the patches itself from ``[B, 3, H, W]`` pixels in the image
processor's order (row-major patches, each ``(p, p, channels)`` flattened), so it plugs into the same interface
as every other tower. The position embeddings (a ``sqrt(num_patches)`` grid) are resized to ``g x g`` by the
model's own embeddings, as for any NaFlex input. ``image_size`` defaults to the processor's ``max_num_patches``
grid (else the config's ``num_patches`` grid): for a square image this is exactly what ``Siglip2ImageProcessor``
produces (bilinear resize, rescale 1/255, mean = std = 0.5).

Features: as ``siglip`` (hidden states numbered like CLIP's, no post_layernorm, no pooling head, no class token:
``cls_patch`` is a :class:`RecipeError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from medzoo import (
    TINY_VIT_CONFIG,
    ExportRefused,
    ImageTransform,
    LlavaHfTower,
    PluginError,
    RecipeError,
    TransformersVisionTower,
    image_statistics,
    read_preprocessor,
)
from medzoo.plugins.vision.siglip import SIGLIP_MEAN, SIGLIP_STD

SIGLIP2_HUB_IDS = ("google/siglip2-so400m-patch16-naflex", "google/siglip2-base-patch16-naflex")
RESAMPLING = {2: "bilinear", 3: "bicubic"}


class Siglip2VisionEncoder(TransformersVisionTower):
    """A SigLIP 2 NaFlex tower at a fixed square size; ``forward`` returns ``hidden_states[feature_layer]``.

    ``from_pretrained`` takes a hub id (``google/siglip2-so400m-patch16-naflex``) or a local folder (a full
    Siglip2Model gives its vision half); ``image_size`` fixes the square input (default: the processor's grid).
    ``from_config`` configs may add ``input_size`` (default: the ``num_patches`` grid) and ``resample``
    (``bilinear``, NaFlex's default, or ``bicubic``) to the statistics.
    """

    name = "siglip2"
    model_class, config_class, checkpoint = "Siglip2VisionModel", "Siglip2VisionConfig", "SigLIP 2"
    config_overrides = {"vision_use_head": False}
    architecture_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
                         "patch_size", "num_patches", "hidden_act", "layer_norm_eps")
    default_mean, default_std = SIGLIP_MEAN, SIGLIP_STD
    tiny = {**{key: value for key, value in TINY_VIT_CONFIG.items() if key != "image_size"}, "num_patches": 16}
    class_token, no_class_token = False, "SigLIP 2 pools with an attention head"
    preprocessing_keys = ("image_mean", "image_std", "input_size", "resample")

    def configure(self, input_size: int | None = None, resample: str = "bilinear", **image_preprocessing: Any) -> None:
        patch = self.patch_size
        self.input_size = int(input_size or patch * math.isqrt(self.model.config.num_patches))
        if self.input_size % patch or self.input_size < patch:
            raise RecipeError(
                f"vision encoder 'siglip2': input size {self.input_size} is not a positive multiple of the patch "
                f"size {patch}"
            )
        self.resample = resample
        super().configure(**image_preprocessing)

    @classmethod
    def checkpoint_preprocessing(cls, source: str, config: Any, image_size: int | None) -> dict[str, Any]:
        preprocessing = read_naflex_preprocessing(source, config.patch_size)
        if image_size is not None:
            preprocessing["input_size"] = image_size
        return preprocessing

    def preprocessing_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "resample": self.resample}

    def build_transform(self) -> ImageTransform:
        transform = super().build_transform()
        return ResampledImageTransform.wrapping(transform, self.resample)

    def transform_arguments(self) -> dict[str, Any]:
        return {"resize": "square"}

    @property
    def image_size(self) -> int:
        return self.input_size

    def patchify(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, H, W]`` -> NaFlex patches ``[B, g * g, p * p * C]`` and ``spatial_shapes`` ``[B, 2]``."""
        batch, channels, height, width = pixel_values.shape
        patch = self.patch_size
        if height != self.input_size or width != self.input_size:
            raise ValueError(
                f"vision encoder 'siglip2': expected {self.input_size} x {self.input_size} pixels, got {height} x {width}"
            )
        grid = height // patch
        patches = pixel_values.reshape(batch, channels, grid, patch, grid, patch).permute(0, 2, 4, 3, 5, 1)
        shapes = torch.tensor([[grid, grid]], dtype=torch.long, device=pixel_values.device).expand(batch, 2)
        return patches.reshape(batch, grid * grid, patch * patch * channels), shapes

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Every patch is real: no attention mask reaches the blocks."""
        return self.model.embeddings(*self.patchify(pixel_values))

    def llava_hf_export(self, name: str) -> LlavaHfTower:
        """Refused: llava-hf feeds its tower pixels, and NaFlex takes patches."""
        raise ExportRefused(
            f"hf-llava cannot hold the {name} vision encoder ({type(self).__name__}): llava-hf feeds its tower "
            "[B, 3, H, W] pixels and Siglip2VisionModel needs NaFlex patches, pixel_attention_mask and spatial_shapes"
        )


@dataclass(frozen=True)
class ResampledImageTransform(ImageTransform):
    """:class:`ImageTransform` whose square resize uses ``resample`` (NaFlex processors resize bilinearly)."""

    resample: str = "bilinear"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resample not in RESAMPLING.values():
            raise RecipeError(f"vision encoder 'siglip2': resample must be 'bilinear' or 'bicubic', got {self.resample!r}")

    @classmethod
    def wrapping(cls, transform: ImageTransform, resample: str) -> ResampledImageTransform:
        fields = {key: getattr(transform, key) for key in transform.__dataclass_fields__}
        return cls(**fields, resample=resample)

    def pixels(self, image: Image.Image) -> Image.Image:
        filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
        return self.squared(image).resize((self.size, self.size), filters[self.resample])


def read_naflex_preprocessing(source: str, patch_size: int) -> dict[str, Any]:
    """Statistics, resampling and the square grid of the source's ``Siglip2ImageProcessor`` config."""
    found = read_preprocessor(source)
    if found is None:
        return {}
    processor, path = found
    mean, std = image_statistics(processor, path, SIGLIP_MEAN, SIGLIP_STD)
    preprocessing: dict[str, Any] = {"image_mean": mean, "image_std": std}
    if processor.get("patch_size", patch_size) != patch_size:
        raise PluginError(f"{path}: patch_size {processor['patch_size']} differs from the tower's {patch_size}")
    resample = processor.get("resample", 2)
    if resample not in RESAMPLING:
        raise PluginError(f"{path}: resample {resample!r} is not supported; expected 2 (bilinear) or 3 (bicubic)")
    preprocessing["resample"] = RESAMPLING[resample]
    max_patches = processor.get("max_num_patches")
    if isinstance(max_patches, int) and max_patches > 0:
        preprocessing["input_size"] = patch_size * math.isqrt(max_patches)
    return preprocessing
