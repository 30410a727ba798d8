"""Image ablations: replace every image with noise or a blank frame to see whether answers depend on it."""

from __future__ import annotations

import numpy as np
from PIL import Image

ABLATIONS = ("noise", "blank")


def ablated_image(image: Image.Image, kind: str, seed: int) -> Image.Image:
    width, height = image.size
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if kind == "blank":
        return Image.new("RGB", (width, height), (128, 128, 128))
    raise ValueError(f"unknown image ablation {kind!r}; expected one of {ABLATIONS}")
