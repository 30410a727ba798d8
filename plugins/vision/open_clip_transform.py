"""open_clip's own eval transform behind medzoo's image-mode handling and padding."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image

from medzoo import ImageTransform

# The open_clip preprocess_cfg keys the open_clip transform uses besides mean / std (kept with the architecture).
OPEN_CLIP_TRANSFORM_KEYS = ("interpolation", "resize_mode", "fill_color")


@dataclass(frozen=True)
class OpenClipImageTransform(ImageTransform):
    """open_clip's own eval transform (``open_clip.transform.image_transform(size, is_train=False, ...)``: resize,
    centre crop, ``ToTensor``, normalise) applied after medzoo's mode handling and optional padding.

    It differs from the CLIP processor in the crop offset (torchvision rounds ``(extent - size) / 2`` half to
    even) and in the float arithmetic (float32 ``/ 255``); the 16-bit, alpha and padding options apply as in
    :class:`ImageTransform`, before open_clip sees the image.
    """

    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    def __post_init__(self) -> None:
        from open_clip.transform import image_transform

        super().__post_init__()
        compose = image_transform(
            self.size,
            is_train=False,
            mean=self.mean,
            std=self.std,
            resize_mode=self.resize_mode,
            interpolation=self.interpolation,
            fill_color=self.fill_color,
        )
        object.__setattr__(self, "open_clip_transform", compose)

    @classmethod
    def wrapping(cls, transform: ImageTransform, open_clip_preprocess: dict[str, Any]) -> OpenClipImageTransform:
        from open_clip.transform import PreprocessCfg

        fields = {key: getattr(transform, key) for key in transform.__dataclass_fields__}
        defaults = asdict(PreprocessCfg())
        extra = {key: open_clip_preprocess.get(key, defaults[key]) for key in OPEN_CLIP_TRANSFORM_KEYS}
        return cls(**fields, **extra)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.open_clip_transform(self.squared(image))

    def pixels(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError("open_clip's transform makes the tensor directly; use the transform itself")
