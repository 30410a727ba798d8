"""Small numpy drawing helpers shared by the domain renderers (float images in [0, 1], 64x64)."""

from __future__ import annotations

import numpy as np

IMAGE_SIZE = 64
_ROWS, _COLS = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)

Colour = tuple[float, float, float]


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Boolean mask of an axis-aligned filled ellipse."""
    return ((_COLS - cx) / rx) ** 2 + ((_ROWS - cy) / ry) ** 2 <= 1.0


def ring(cx: float, cy: float, rx: float, ry: float, thickness: float) -> np.ndarray:
    """Boolean mask of an elliptical band ``thickness`` pixels wide, inside the outer ellipse."""
    inner = ellipse(cx, cy, max(rx - thickness, 0.5), max(ry - thickness, 0.5))
    return ellipse(cx, cy, rx, ry) & ~inner


def blob(rng: np.random.Generator, cx: float, cy: float, radius: float, roughness: float = 0.25) -> np.ndarray:
    """Boolean mask of an irregular roundish blob: a circle whose radius wobbles with the angle."""
    angle = np.arctan2(_ROWS - cy, _COLS - cx)
    wobble = np.zeros_like(angle)
    for harmonic in (2, 3, 5):
        wobble += rng.uniform(-roughness, roughness) / harmonic * 2 * np.cos(harmonic * angle + rng.uniform(0, 6.3))
    distance = np.hypot(_COLS - cx, _ROWS - cy)
    return distance <= radius * (1.0 + wobble)


def radial(cx: float, cy: float, radius: float) -> np.ndarray:
    """Distance from a centre divided by ``radius`` (0 at the centre)."""
    return np.hypot(_COLS - cx, _ROWS - cy) / radius


def rows() -> np.ndarray:
    """Row index of every pixel."""
    return _ROWS


def smooth_noise(rng: np.random.Generator, cells: int = 8) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, upsampled bilinearly."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    position = np.linspace(0, cells, IMAGE_SIZE, dtype=np.float32)
    low = np.floor(position).astype(int).clip(0, cells - 1)
    frac = position - low
    top = grid[low][:, low] * (1 - frac)[None, :] + grid[low][:, low + 1] * frac[None, :]
    bottom = grid[low + 1][:, low] * (1 - frac)[None, :] + grid[low + 1][:, low + 1] * frac[None, :]
    return top * (1 - frac)[:, None] + bottom * frac[:, None]


def grey(value: np.ndarray) -> np.ndarray:
    """Stack a single-channel image into RGB."""
    return np.repeat(value[..., None], 3, axis=2)


def paint(image: np.ndarray, mask: np.ndarray, colour: Colour | float, opacity: float = 1.0) -> None:
    """Blend ``colour`` into ``image`` (H, W, 3) where ``mask`` is set, in place."""
    target = np.asarray(colour if isinstance(colour, tuple) else (colour,) * 3, dtype=np.float32)
    image[mask] = image[mask] * (1.0 - opacity) + target * opacity


def to_uint8(image: np.ndarray, rng: np.random.Generator, noise: float = 0.02) -> np.ndarray:
    """Add pixel noise, clip to [0, 1] and convert to an RGB uint8 array."""
    noisy = image + rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    return (np.clip(noisy, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive pixel box ``(x1, y1, x2, y2)`` of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
