"""Which synthetic images exist (domain, split, index), their findings, and rendering them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medzoo.app.data_synth import chest_radiograph, colonoscopy, cross_sections, histology, sampling

SPLITS = ("train", "val", "test")
Renderer = Callable[[dict[str, str], np.random.Generator], tuple[np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class Domain:
    """One image domain: the attributes that vary (with their classes) and the renderer."""

    name: str
    attributes: dict[str, tuple[str, ...]]
    render: Renderer


DOMAINS: tuple[Domain, ...] = (
    Domain("cxr", chest_radiograph.ATTRIBUTES, chest_radiograph.draw),
    Domain("ct", cross_sections.ATTRIBUTES, partial(cross_sections.draw, "ct")),
    Domain("mri", cross_sections.ATTRIBUTES, partial(cross_sections.draw, "mri")),
    Domain("histology", histology.ATTRIBUTES, histology.draw),
    Domain("colonoscopy", colonoscopy.ATTRIBUTES, colonoscopy.draw),
)
RADIOLOGY = ("cxr", "ct", "mri")


@dataclass(frozen=True)
class SynthImage:
    """One generated image and the findings its pixels show."""

    domain: str
    split: str
    index: int
    findings: dict[str, Any] = field(default_factory=dict)

    @property
    def relative_path(self) -> str:
        """Path relative to ``DIR/images``."""
        return f"{self.domain}/{self.split}_{self.index:06d}.png"

    @property
    def image_id(self) -> str:
        return f"{self.domain}_{self.split}_{self.index:06d}"


def per_domain_counts(total: int) -> dict[str, int]:
    """Split ``total`` images over the domains as evenly as possible (earlier domains take the remainder)."""
    base, remainder = divmod(total, len(DOMAINS))
    return {domain.name: base + (1 if i < remainder else 0) for i, domain in enumerate(DOMAINS)}


def render_split(domain: Domain, split: str, count: int, seed: int, image_dir: Path) -> list[SynthImage]:
    """Render ``count`` images of one domain and split into ``image_dir``; classes are balanced."""
    rng = sampling.stream(seed, f"images/{domain.name}/{split}")
    labels = {name: sampling.balanced_labels(values, count, rng) for name, values in domain.attributes.items()}
    (image_dir / domain.name).mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(count):
        attributes = {name: labels[name][index] for name in domain.attributes}
        pixels, extras = domain.render(attributes, rng)
        image = SynthImage(domain.name, split, index, {**attributes, **extras})
        Image.fromarray(pixels, "RGB").save(image_dir / image.relative_path, format="PNG")
        images.append(image)
    return images
