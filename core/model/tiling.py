"""LLaVA-NeXT's "AnyRes" tiling of one image, as transformers' ``LlavaNextImageProcessorPil`` does it (the
PIL / NumPy implementation, ``LlavaNextImageProcessor`` before transformers 5).

1. :func:`select_best_resolution`: among the recipe's resolutions (``image_grid_pinpoints``, each
   ``(height, width)``), the one that keeps the most of the image's pixels after an aspect-preserving downscale,
   ties broken by the least wasted area.
2. The image is resized into it keeping its aspect (:func:`fitted_size`, PIL bicubic), centred on a black canvas
   of that resolution (:func:`padding`) and cut into tower-sized crops, row by row.
3. The whole image squashed to one crop (the thumbnail) comes first, then the crops.

:func:`image_token_count` is the number of image tokens the LLaVA-NeXT head makes of it (the thumbnail's, the
grid's features with the padding removed, one newline token per feature row), as transformers' processor counts
them. :func:`check_grid` and :func:`check_token_cap` refuse a recipe's bad values in one line before any weights
load. Nothing here knows a tower: callers pass the crop size and the tokens per crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from medzoo.core.errors import RecipeError

Size = tuple[int, int]  # (height, width)


def select_best_resolution(original_size: Size, resolutions: Sequence[Sequence[int]]) -> Size:
    """The resolution (height, width) that keeps the most pixels of an image of ``original_size`` once it is
    downscaled into it with its aspect kept; among equals the one wasting the least area (the first on a tie)."""
    height, width = original_size
    best, most_kept, least_wasted = None, 0, math.inf
    for target_height, target_width in resolutions:
        scale = min(target_width / width, target_height / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        wasted = target_width * target_height - kept
        if kept > most_kept or (kept == most_kept and wasted < least_wasted):
            best, most_kept, least_wasted = (int(target_height), int(target_width)), kept, wasted
    if best is None:
        raise ValueError(f"no resolution to choose from: {list(resolutions)!r}")
    return best


def fitted_size(original_size: Size, target: Size) -> Size:
    """The size (height, width) of the image resized into ``target`` with its aspect kept (the side that limits
    the scale fills the target; the other is rounded up, at most the target's)."""
    height, width = original_size
    target_height, target_width = target
    scale_width, scale_height = target_width / width, target_height / height
    if scale_width < scale_height:
        return min(math.ceil(height * scale_width), target_height), target_width
    return target_height, min(math.ceil(width * scale_height), target_width)


def padding(size: Size, target: Size) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) that centre ``size`` in ``target`` (the odd pixel goes right and bottom)."""
    left, extra_x = divmod(target[1] - size[1], 2)
    top, extra_y = divmod(target[0] - size[0], 2)
    return left, top, left + extra_x, top + extra_y


@dataclass(frozen=True)
class Tiling:
    """One image tiled: the chosen resolution, its grid of crops (rows, columns) and the pictures."""

    resolution: Size
    grid: Size
    thumbnail: Image.Image
    crops: tuple[Image.Image, ...]

    @property
    def images(self) -> list[Image.Image]:
        """The thumbnail, then the crops row by row: the order the tower sees them in."""
        return [self.thumbnail, *self.crops]


def tile_image(image: Image.Image, resolutions: Sequence[Sequence[int]], crop_size: int) -> Tiling:
    """``image`` (RGB) tiled into ``crop_size`` crops over the best-fit resolution, plus its thumbnail."""
    original = (image.height, image.width)
    resolution = select_best_resolution(original, resolutions)
    height, width = fitted_size(original, resolution)
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    canvas = Image.new(image.mode, (resolution[1], resolution[0]), 0)
    left, top, _, _ = padding((height, width), resolution)
    canvas.paste(resized, (left, top))
    rows, columns = resolution[0] // crop_size, resolution[1] // crop_size
    crops = tuple(
        canvas.crop((column * crop_size, row * crop_size, (column + 1) * crop_size, (row + 1) * crop_size))
        for row in range(rows) for column in range(columns)
    )
    thumbnail = image.resize((crop_size, crop_size), Image.Resampling.BICUBIC)
    return Tiling(resolution, (rows, columns), thumbnail, crops)


def unpadded_grid(original_size: Size, grid_size: Size) -> Size:
    """The feature grid (rows, columns) of the tiled image without the rows or columns that hold only padding
    (LLaVA-NeXT's ``unpad_image``; transformers' ``_get_unpadded_features`` arithmetic)."""
    height, width = original_size
    rows, columns = grid_size
    if width / height > columns / rows:
        new_rows = int(round(height * (columns / width), 7))
        rows -= (rows - new_rows) // 2 * 2
    else:
        new_columns = int(round(width * (rows / height), 7))
        columns -= (columns - new_columns) // 2 * 2
    return rows, columns


def capped_grid(grid: Size, budget: int, newline: bool) -> Size:
    """The feature grid (rows, columns) shrunk until its tokens (one more per row with ``newline``) fit in
    ``budget``: both sides scaled by the same factor (rounded down, at least 1), then the longer side cut one at
    a time; ``(0, 0)`` when not even one feature fits. A grid that already fits is returned unchanged. (medzoo's
    rule; LLaVA-OneVision's ``anyres_max`` likewise shrinks the unpadded grid bilinearly to a token budget.)"""
    rows, columns = grid
    extra = 1 if newline else 0
    if rows * (columns + extra) <= budget:
        return grid
    if budget < 1 + extra:
        return 0, 0
    scale = math.sqrt(budget / (rows * (columns + extra)))
    rows, columns = max(1, int(rows * scale)), max(1, int(columns * scale))
    while rows * (columns + extra) > budget:
        if rows >= columns and rows > 1:
            rows -= 1
        else:
            columns -= 1
    return rows, columns


def feature_grid(
    original_size: Size,
    resolutions: Sequence[Sequence[int]],
    crop_size: int,
    tokens_per_side: int,
    unpad: bool = True,
) -> tuple[Size, Size]:
    """(the crops' grid (rows, columns), the feature grid after unpadding) of an image of ``original_size``."""
    resolution = select_best_resolution(original_size, resolutions)
    crops = (resolution[0] // crop_size, resolution[1] // crop_size)
    grid = (crops[0] * tokens_per_side, crops[1] * tokens_per_side)
    return crops, (unpadded_grid(original_size, grid) if unpad else grid)


def image_token_count(
    original_size: Size,
    resolutions: Sequence[Sequence[int]],
    crop_size: int,
    tokens_per_side: int,
    unpad: bool = True,
    newline: bool = True,
    max_tokens: int | None = None,
) -> int:
    """Image tokens for one image: the thumbnail's ``tokens_per_side ** 2``, then the grid's features (padding
    removed with ``unpad``) and, with ``newline``, one learned newline token closing each feature row; with
    ``max_tokens`` the grid is shrunk by :func:`capped_grid` so the whole stays within it."""
    _, (rows, columns) = feature_grid(original_size, resolutions, crop_size, tokens_per_side, unpad)
    if max_tokens is not None:
        rows, columns = capped_grid((rows, columns), max_tokens - tokens_per_side**2, newline)
    return tokens_per_side**2 + rows * columns + (rows if newline else 0)


def check_grid(resolutions: Any, crop_size: int, key: str) -> list[Size]:
    """``resolutions`` as (height, width) pairs, each side a positive multiple of ``crop_size``; otherwise a
    one-line ``RecipeError`` naming ``key``, the value and what is allowed."""
    allowed = f"expected a list of [height, width] pairs whose sides are multiples of the tower's {crop_size}-px crops"
    if not isinstance(resolutions, (list, tuple)) or not resolutions:
        raise RecipeError(f"{key}: {resolutions!r}; {allowed}")
    checked = []
    for index, pair in enumerate(resolutions):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(side, int) and not isinstance(side, bool) for side in pair)):
            raise RecipeError(f"{key}[{index}]: {pair!r}; {allowed}")
        for side in pair:
            if side < crop_size or side % crop_size:
                raise RecipeError(f"{key}[{index}]: {list(pair)!r}: {side} is not a positive multiple of the tower's "
                                  f"{crop_size}-px crops; {allowed}")
        checked.append((pair[0], pair[1]))
    return checked


def check_token_cap(max_tokens: Any, tokens_per_crop: int, key: str) -> int | None:
    """``max_tokens`` (``None``: no cap) at least one crop's ``tokens_per_crop``; otherwise one-line ``RecipeError``."""
    if max_tokens is None:
        return None
    allowed = f"expected an integer >= {tokens_per_crop} (one crop's image tokens), or null for no cap"
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise RecipeError(f"{key}: {max_tokens!r}; {allowed}")
    if max_tokens < tokens_per_crop:
        raise RecipeError(f"{key}: {max_tokens} is below one crop's {tokens_per_crop} image tokens; {allowed}")
    return max_tokens
