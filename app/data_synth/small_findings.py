"""A synthetic task that needs resolution: is there a nodule? The nodule is a few bright pixels in a large
textured field, so it is lost when the image is downscaled to a tower's size and kept in a tile of the image at
full resolution (LLaVA-NeXT AnyRes tiling; docs/high-resolution.md).

``write_small_findings(output_dir, count, seed)`` writes ``images/<n>.png`` and ``small_findings.json`` in
LLaVA-Med's ``test.json`` layout (the ``med-vqa`` reader), half the images with a nodule, half without; each
image with a nodule has a twin without it (the same field), so a test can measure exactly what the nodule
changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from medzoo.core.atomic_writes import write_atomically

QUESTION = "Is there a nodule in this image?"
FILE = "small_findings.json"


@dataclass(frozen=True)
class SmallFindings:
    """``size``-px square fields with a ``nodule``-px bright square on half of them."""

    size: int = 256
    nodule: int = 2
    #: grey level of the field's mean, its texture's amplitude, and the nodule's level
    background: float = 90.0
    texture: float = 25.0
    brightness: float = 250.0

    def field(self, rng: np.random.Generator) -> np.ndarray:
        """A smooth grey texture (bilinear upsampling of a coarse random grid) as float grey levels."""
        coarse = rng.normal(0.0, 1.0, (9, 9)).astype(np.float32)
        image = Image.fromarray(coarse, mode="F").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return self.background + self.texture * np.asarray(image)

    def pair(self, rng: np.random.Generator) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
        """(the field with a nodule, the same field without, the nodule's top-left (row, column))."""
        base = self.field(rng)
        margin = self.nodule
        row, column = (int(value) for value in rng.integers(margin, self.size - 2 * margin, 2))
        with_nodule = base.copy()
        with_nodule[row : row + self.nodule, column : column + self.nodule] = self.brightness
        return _rgb(with_nodule), _rgb(base), (row, column)


def _rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L").convert("RGB")


def write_small_findings(output_dir: str | Path, count: int, seed: int = 0,
                         task: SmallFindings | None = None) -> Path:
    """``count`` records (an even number: pairs with and without the nodule); returns the json's path."""
    if count <= 0 or count % 2:
        raise ValueError(f"count: {count}; expected a positive even number (pairs with and without a nodule)")
    task = task or SmallFindings()
    output = Path(output_dir)
    images = output / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for pair in range(count // 2):
        with_nodule, without, _ = task.pair(rng)
        for answer, image in (("yes", with_nodule), ("no", without)):
            name = f"{2 * pair + (answer == 'no')}.png"
            image.save(images / name)
            records.append({
                "id": f"small-{name.removesuffix('.png')}", "image": name, "answer_type": "CLOSED",
                "question_type": "presence",
                "conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"},
                                  {"from": "gpt", "value": answer.capitalize() + "."}],
            })
    return write_atomically(output / FILE, json.dumps(records, indent=1))
