"""CT- and MRI-like axial slices of the brain, liver, kidneys or lungs.

Modality is shown by intensity conventions: CT has bright bone and no fat rim; MRI (T1-like) has dark bone,
a bright subcutaneous fat rim and brighter soft tissue. The organ is shown by shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medzoo.app.data_synth import drawing

ATTRIBUTES: dict[str, tuple[str, ...]] = {"organ": ("brain", "liver", "kidney", "lung")}

# intensity per tissue and modality
_INTENSITY = {
    "ct": {"tissue": 0.42, "bone": 0.97, "fat_rim": 0.42, "organ": 0.58, "kidney": 0.78, "air": 0.03, "fluid": 0.22},
    "mri": {"tissue": 0.6, "bone": 0.08, "fat_rim": 0.95, "organ": 0.38, "kidney": 0.85, "air": 0.03, "fluid": 0.12},
}


def draw(modality: str, attributes: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one slice of ``attributes['organ']`` in ``modality`` ('ct' or 'mri')."""
    tone = _INTENSITY[modality]
    organ = attributes["organ"]
    dx, dy = rng.uniform(-2, 2), rng.uniform(-2, 2)
    value = np.zeros((drawing.IMAGE_SIZE, drawing.IMAGE_SIZE), dtype=np.float32)

    if organ == "brain":
        rx, ry = 24 + rng.uniform(-1, 1), 28 + rng.uniform(-1, 1)
        head = drawing.ellipse(32 + dx, 32 + dy, rx, ry)
        value[head] = tone["tissue"]
        if modality == "mri":
            value[drawing.ring(32 + dx, 32 + dy, rx, ry, 2)] = tone["fat_rim"]
            value[drawing.ring(32 + dx, 32 + dy, rx - 2, ry - 2, 2.5)] = tone["bone"]
        else:
            value[drawing.ring(32 + dx, 32 + dy, rx, ry, 3)] = tone["bone"]
        for side in (-1, 1):
            value[drawing.ellipse(32 + dx + 4 * side, 32 + dy, 2.5, 7)] = tone["fluid"]
    else:
        rx, ry = 29 + rng.uniform(-1, 1), 22 + rng.uniform(-1, 1)
        body = drawing.ellipse(32 + dx, 34 + dy, rx, ry)
        value[body] = tone["tissue"]
        value[drawing.ring(32 + dx, 34 + dy, rx, ry, 3)] = tone["fat_rim"]
        if organ == "liver":
            liver = drawing.blob(rng, 22 + dx, 31 + dy, 14, roughness=0.12) & body
            value[liver] = tone["organ"]
        elif organ == "kidney":
            for side in (-1, 1):
                value[drawing.ellipse(32 + dx + 13 * side, 40 + dy, 5.5, 8)] = tone["kidney"]
                value[drawing.ellipse(32 + dx + 11 * side, 40 + dy, 1.8, 3)] = tone["fluid"]
        else:  # lung
            for side in (-1, 1):
                value[drawing.ellipse(32 + dx + 14 * side, 31 + dy, 11, 14)] = tone["air"]
            value[drawing.ellipse(33 + dx, 30 + dy, 6, 7)] = tone["organ"]
        value[drawing.ellipse(32 + dx, 50 + dy, 4, 4)] = tone["bone"]

    value += 0.03 * drawing.smooth_noise(rng, 8) * (value > 0.02)
    return drawing.to_uint8(drawing.grey(value), rng, noise=0.02), {"modality": modality}
