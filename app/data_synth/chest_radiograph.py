"""Chest-radiograph-like frontal views: dark lung fields, a bright mediastinum, an optional opacity and effusion.

Sides are the patient's, read as a radiologist does: the patient's left lung is on the image's right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medzoo.app.data_synth import drawing

DOMAIN = "cxr"
ATTRIBUTES: dict[str, tuple[str, ...]] = {"opacity": ("left", "right", "none"), "effusion": ("yes", "no")}

# image-x centre of each lung, by the patient's side
_LUNG_CENTRE_X = {"right": 18.0, "left": 46.0}
_LUNG_CENTRE_Y, _LUNG_RX, _LUNG_RY = 30.0, 10.0, 19.0


def draw(attributes: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one radiograph; returns the RGB uint8 image and extra findings (the effusion side)."""
    shift_x, shift_y = rng.uniform(-2, 2), rng.uniform(-2, 2)
    body = drawing.ellipse(32 + shift_x, 38 + shift_y, 31, 34)
    value = np.where(body, 0.42, 0.04).astype(np.float32)
    value += 0.04 * drawing.smooth_noise(rng, 6)

    lungs = {}
    for side, centre_x in _LUNG_CENTRE_X.items():
        lungs[side] = drawing.ellipse(centre_x + shift_x, _LUNG_CENTRE_Y + shift_y, _LUNG_RX, _LUNG_RY)
        value[lungs[side]] = 0.13
    ribs = (np.sin(drawing.rows() * 0.75 + rng.uniform(0, 6.3)) > 0.6) & (lungs["left"] | lungs["right"])
    value[ribs] += 0.07

    mediastinum = drawing.ellipse(32 + shift_x, 34 + shift_y, 6, 26)
    heart = drawing.ellipse(35 + shift_x, 44 + shift_y, 9, 8)
    value[mediastinum | heart] = 0.86

    extras: dict[str, Any] = {}
    opacity = attributes["opacity"]
    if opacity != "none":
        outward = 2.5 if opacity == "left" else -2.5  # away from the heart and mediastinum
        centre_x = _LUNG_CENTRE_X[opacity] + outward + shift_x + rng.uniform(-1.5, 1.5)
        centre_y = _LUNG_CENTRE_Y + shift_y + rng.uniform(-8, 4)
        spot = drawing.blob(rng, centre_x, centre_y, rng.uniform(6.0, 7.5), roughness=0.15) & lungs[opacity]
        value[spot] = 0.82

    if attributes["effusion"] == "yes":
        side = str(rng.choice(["left", "right"]))
        extras["effusion_side"] = side
        level = _LUNG_CENTRE_Y + shift_y + _LUNG_RY - rng.uniform(10, 13)
        fluid = lungs[side] & (drawing.rows() >= level)
        value[fluid] = 0.92

    return drawing.to_uint8(drawing.grey(value), rng, noise=0.025), extras
