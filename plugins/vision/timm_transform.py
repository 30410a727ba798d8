"""timm's own eval transform (``timm.data.create_transform``) behind medzoo's image-mode handling and padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from medzoo import ImageTransform

# The timm pretrained_cfg keys of the eval transform besides mean / std (kept with the architecture).
TIMM_TRANSFORM_KEYS = ("crop_pct", "interpolation", "crop_mode")


@dataclass(frozen=True)
class TimmImageTransform(ImageTransform):
    """``timm.data.create_transform(input_size=size, crop_pct=..., interpolation=..., crop_mode=..., mean, std)``
    (resize to ``floor(size / crop_pct)``, crop, ``ToTensor``, normalise) applied to :meth:`squared`'s image, so
    ``image_aspect``, 16-bit, alpha and padding options act as in :class:`ImageTransform` before timm sees it."""

    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        super().__post_init__()
        from timm.data import create_transform

        compose = create_transform(
            input_size=(3, self.size, self.size),
            is_training=False,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
        )
        object.__setattr__(self, "timm_transform", compose)

    @classmethod
    def wrapping(cls, transform: ImageTransform, settings: dict[str, Any]) -> TimmImageTransform:
        fields = {key: getattr(transform, key) for key in transform.__dataclass_fields__}
        return cls(**fields, **{key: settings[key] for key in TIMM_TRANSFORM_KEYS if key in settings})

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.timm_transform(self.squared(image))

    def pixels(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError("timm's transform makes the tensor directly; use the transform itself")


def timm_transform_settings(pretrained_cfg: dict[str, Any]) -> dict[str, Any]:
    """crop_pct / interpolation / crop_mode of a timm pretrained_cfg, timm's defaults where absent."""
    from timm.data.constants import DEFAULT_CROP_PCT

    return {
        "crop_pct": float(pretrained_cfg.get("crop_pct") or DEFAULT_CROP_PCT),
        "interpolation": str(pretrained_cfg.get("interpolation") or "bicubic"),
        "crop_mode": str(pretrained_cfg.get("crop_mode") or "center"),
    }
