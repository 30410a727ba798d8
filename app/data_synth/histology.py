"""Histology tiles: H&E (pink stroma, purple nuclei) or IHC (pale background, brown DAB nuclei),
with few or many nuclei that are small or large."""

from __future__ import annotations

from typing import Any

import numpy as np

from medzoo.app.data_synth import drawing

DOMAIN = "histology"
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "stain": ("h&e", "ihc"),
    "nuclei_count": ("few", "many"),
    "nuclei_size": ("small", "large"),
}

_BACKGROUND = {"h&e": (0.96, 0.66, 0.80), "ihc": (0.93, 0.91, 0.86)}
_NUCLEUS = {"h&e": (0.36, 0.14, 0.50), "ihc": (0.52, 0.30, 0.10)}
_COUNT_RANGE = {"few": (3, 5), "many": (26, 34)}
_RADIUS_RANGE = {"small": (1.6, 2.1), "large": (4.8, 5.8)}


def draw(attributes: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one tile; returns the image and the exact number of nuclei drawn."""
    stain = attributes["stain"]
    image = np.empty((drawing.IMAGE_SIZE, drawing.IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = np.asarray(_BACKGROUND[stain], dtype=np.float32)
    texture = drawing.smooth_noise(rng, 16)[..., None]
    image += 0.05 * texture
    fibres = np.sin(drawing.rows() * 0.4 + 3 * drawing.smooth_noise(rng, 4)) > 0.7
    drawing.paint(image, fibres, tuple(c * 0.9 for c in _BACKGROUND[stain]), opacity=0.6)

    low, high = _COUNT_RANGE[attributes["nuclei_count"]]
    count = int(rng.integers(low, high + 1))
    r_low, r_high = _RADIUS_RANGE[attributes["nuclei_size"]]
    margin = r_high + 1
    for _ in range(count):
        cx, cy = rng.uniform(margin, 64 - margin, size=2)
        nucleus = drawing.blob(rng, cx, cy, rng.uniform(r_low, r_high), roughness=0.12)
        shade = rng.uniform(0.85, 1.1)
        drawing.paint(image, nucleus, tuple(min(c * shade, 1.0) for c in _NUCLEUS[stain]), opacity=0.92)
    return drawing.to_uint8(image, rng, noise=0.02), {"nuclei": count}
