"""Image preprocessing shared by vision encoders: pad-to-square or resize + centre crop, then normalise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

AspectMode = Literal["pad", "crop"]


@dataclass(frozen=True)
class ImageTransform:
    """PIL image -> normalised ``[3, size, size]`` tensor.

    ``pad``: pad to a square filled with the mean colour, then resize (LLaVA's ``image_aspect_ratio: pad``).
    ``crop``: resize the short side to ``size`` then centre-crop (the CLIP processor's default).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    aspect: AspectMode = "pad"

    def __post_init__(self) -> None:
        if self.aspect not in ("pad", "crop"):
            raise ValueError(f"image aspect mode must be 'pad' or 'crop', got {self.aspect!r}")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if self.aspect == "pad":
            image = pad_to_square(image, tuple(int(round(255 * m)) for m in self.mean))
            image = image.resize((self.size, self.size), Image.BICUBIC)
        else:
            image = resize_short_side(image, self.size)
            image = centre_crop(image, self.size)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (tensor - mean) / std

    def batch(self, images: list[Image.Image]) -> torch.Tensor:
        if not images:
            return torch.empty(0, 3, self.size, self.size)
        return torch.stack([self(image) for image in images])


def pad_to_square(image: Image.Image, fill: tuple[int, ...]) -> Image.Image:
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    return image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))
