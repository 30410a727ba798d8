"""Multi-scale image features, S2-style ("When Do We Not Need Larger Vision Models?", Shi et al. 2024; the
``s2wrapper`` package's ``multiscale_forward``, as LLaVA-S2 and LLaVA-Med++ use it): the same tower reads the
image at several scales; at scale ``s`` the picture (``s`` times the tower's size) is cut into ``s x s`` tiles of
the tower's size, each tile's patch features are put back into one ``s*t x s*t`` grid, that grid is pooled to the
base ``t x t`` grid (area interpolation), and the scales' features are concatenated along channels. The image
tokens stay ``t * t``; their width is ``len(scales)`` times the tower's, and the connector is built for it.

A recipe asks for it with the vision option ``multiscale`` (a list of scales, e.g. ``[1, 2]``; null: off). The
processor then reads each image at the largest scale, ``max(scales) x`` the tower's size, so the larger scales
see detail a fixed-size picture has lost; the smaller scales are bicubic downscales of that tensor (as
``s2wrapper`` resizes its input).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medzoo.core.errors import RecipeError

KEY = "model.vision.options.multiscale"


def multiscale_for(model_spec: dict[str, Any]) -> tuple[int, ...] | None:
    """The scales a model spec asks for (``None``: one scale), refused in one line unless a list of distinct
    positive integers in increasing order."""
    options = (model_spec.get("vision") or {}).get("options") or {}
    scales = options.get("multiscale")
    if scales is None:
        return None
    allowed = "expected a list of distinct positive integers in increasing order, e.g. [1, 2], or null"
    if (not isinstance(scales, (list, tuple)) or not scales
            or not all(isinstance(scale, int) and not isinstance(scale, bool) and scale > 0 for scale in scales)
            or list(scales) != sorted(set(scales))):
        raise RecipeError(f"{KEY}: {scales!r}; {allowed}")
    if options.get("image_grid_pinpoints") is not None:
        raise RecipeError(f"{KEY}: {list(scales)!r} together with image_grid_pinpoints; medzoo reads an image "
                          "either tiled or at several scales, not both (null one of them)")
    return tuple(scales)


def check_square_tokens(num_tokens: int, scales: Sequence[int]) -> int:
    """The side of the tower's square patch grid, or a one-line refusal (a class token has no place in it)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise RecipeError(f"{KEY}: {list(scales)!r}: multi-scale features pool the tower's square patch grid, but "
                          f"it gives {num_tokens} tokens per picture; expected a square number (feature_select "
                          "'patch')")
    return side


def scaled_transform(transform: Any, scales: Sequence[int]) -> Any:
    """The tower's transform at ``max(scales)`` times its size (its own transform when that is 1)."""
    largest = max(scales)
    if largest == 1:
        return transform
    if not dataclasses.is_dataclass(transform) or not hasattr(transform, "resize_size"):
        raise RecipeError(f"{KEY}: {list(scales)!r}: the tower's transform {type(transform).__name__} cannot be "
                          "scaled; expected a tower with one image transform")
    resize_size = transform.resize_size and transform.resize_size * largest
    return dataclasses.replace(transform, size=transform.size * largest, resize_size=resize_size)


def multiscale_features(tower: Any, pixels: torch.Tensor, scales: Sequence[int], side: int) -> torch.Tensor:
    """``[B, 3, H, W]`` pixels -> ``[B, side * side, len(scales) * D]`` features of ``tower`` (crop size ``S``,
    ``side x side`` tokens per crop), the scales in order along channels."""
    size = tower.image_size
    batch = pixels.shape[0]
    outputs = []
    for scale in scales:
        extent = scale * size
        picture = pixels if pixels.shape[-1] == extent else F.interpolate(
            pixels.float(), size=(extent, extent), mode="bicubic").to(pixels.dtype)
        tiles = picture.reshape(batch, 3, scale, size, scale, size).permute(2, 4, 0, 1, 3, 5)
        features = tower(tiles.reshape(scale * scale * batch, 3, size, size))  # [s*s*B, t*t, D]
        dim = features.shape[-1]
        grid = features.reshape(scale, scale, batch, side, side, dim).permute(2, 5, 0, 3, 1, 4)
        grid = grid.reshape(batch, dim, scale * side, scale * side)
        if scale != 1:
            grid = F.interpolate(grid.float(), size=(side, side), mode="area").to(features.dtype)
        outputs.append(grid.flatten(2).transpose(1, 2))
    return torch.cat(outputs, dim=-1)
