"""Colonoscopy frames: pinkish mucosa in a dark circular field of view, a dark lumen, and one finding
(polyp, bleeding, ulcer) with its pixel box, or none ("normal")."""

from __future__ import annotations

from typing import Any

import numpy as np

from medzoo.app.data_synth import drawing

DOMAIN = "colonoscopy"
ATTRIBUTES: dict[str, tuple[str, ...]] = {"finding": ("polyp", "bleeding", "ulcer", "normal")}

_MUCOSA = (0.86, 0.46, 0.42)
_LUMEN = (0.16, 0.04, 0.04)


def draw(attributes: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one frame; extras hold the finding's inclusive pixel box ``(x1, y1, x2, y2)`` or None."""
    image = np.empty((drawing.IMAGE_SIZE, drawing.IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = np.asarray(_MUCOSA, dtype=np.float32)
    image *= (1.0 + 0.08 * drawing.smooth_noise(rng, 6))[..., None]
    vessels = np.abs(drawing.smooth_noise(rng, 10)) < 0.05
    drawing.paint(image, vessels, (0.7, 0.2, 0.22), opacity=0.5)

    # finding and lumen sit in opposite halves so they never overlap
    finding_x = rng.uniform(18, 46)
    finding_y = rng.uniform(18, 46)
    lumen_x = 64 - finding_x + rng.uniform(-4, 4)
    lumen_y = 64 - finding_y + rng.uniform(-4, 4)
    lumen = drawing.blob(rng, lumen_x, lumen_y, rng.uniform(5, 7), roughness=0.2)
    drawing.paint(image, lumen, _LUMEN, opacity=0.9)

    finding = attributes["finding"]
    box = None
    if finding != "normal":
        radius = rng.uniform(7.5, 11.0)
        mask = drawing.blob(rng, finding_x, finding_y, radius, roughness=0.2 if finding == "bleeding" else 0.1)
        if finding == "polyp":
            drawing.paint(image, mask, (0.98, 0.70, 0.52))
            shading = drawing.radial(finding_x - radius / 3, finding_y - radius / 3, radius) < 0.3
            drawing.paint(image, mask & shading, (1.0, 0.97, 0.92), opacity=0.8)
        elif finding == "bleeding":
            drawing.paint(image, mask, (0.45, 0.0, 0.04))
        else:  # ulcer: whitish-yellow base with a red rim
            rim = mask & (drawing.radial(finding_x, finding_y, radius) > 0.75)
            drawing.paint(image, mask, (0.97, 0.94, 0.74))
            drawing.paint(image, rim, (0.78, 0.12, 0.12))
        box = drawing.bounding_box(mask)

    vignette = drawing.radial(32, 32, 34)
    image *= np.clip(1.25 - 0.6 * vignette, 0.0, 1.0)[..., None]
    image[vignette > 0.98] = 0.0
    return drawing.to_uint8(image, rng, noise=0.02), {"box": box}
