"""Dynamic-resolution tiling wired into the model: the tower's crops in, LLaVA-NeXT's image features out.

A recipe turns it on with the vision options ``image_grid_pinpoints`` (the resolutions to tile into),
``max_image_tokens``, ``unpad`` and ``newline`` (core/model/image_processing.py ``TILING_OPTION_DEFAULTS``);
every tower gets it, since the tower only ever sees crops of its own size. :class:`Tiling` holds the checked
settings; :func:`tiled_pixels` is the processor's half (thumbnail then crops, through the tower's own
transform), :func:`image_features` the model's half, as transformers' ``LlavaNextModel.pack_image_features``:
the crops' features laid out as one grid, the padding rows or columns removed, the grid shrunk to the token cap,
a learned newline feature closing each row, the thumbnail's features first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from medzoo.core.errors import RecipeError
from medzoo.core.model.tiling import (
    Size,
    capped_grid,
    check_grid,
    check_token_cap,
    feature_grid,
    image_token_count,
    tile_image,
)

OPTIONS_KEY = "model.vision.options"
NEWLINE = "image_newline"


@dataclass(frozen=True)
class Tiling:
    """Checked tiling settings for a tower with ``crop_size``-px inputs and ``tokens_per_side ** 2`` image
    tokens per crop (after the connector)."""

    pinpoints: tuple[Size, ...]
    crop_size: int
    tokens_per_side: int
    max_tokens: int | None = None
    unpad: bool = True
    newline: bool = True

    def token_count(self, original_size: Size) -> int:
        """Image tokens of an image of ``original_size`` (height, width)."""
        return image_token_count(original_size, self.pinpoints, self.crop_size, self.tokens_per_side,
                                 self.unpad, self.newline, self.max_tokens)

    def crop_count(self, original_size: Size) -> int:
        """Pictures the tower sees for one image: the thumbnail and the grid's crops."""
        (rows, columns), _ = feature_grid(original_size, self.pinpoints, self.crop_size, 1, False)
        return 1 + rows * columns


def shrunk_grid(pinpoints: Any, crop_size: int) -> Any:
    """A recipe's grid for its real tower redrawn for the tiny one of ``shrink``: each side divided by the
    sides' greatest common divisor (the real crop size, 336 for LLaVA-NeXT's pinpoints) and multiplied by
    ``crop_size``, so the grid keeps its shapes in crops (anything malformed is returned for the checks)."""
    sides = [side for pair in pinpoints for side in pair] if isinstance(pinpoints, (list, tuple)) else []
    if not sides or not all(isinstance(pair, (list, tuple)) for pair in pinpoints) or not all(
            isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in sides):
        return pinpoints
    unit = math.gcd(*sides)
    return [[side // unit * crop_size for side in pair] for pair in pinpoints]


def check_grid_early(vision_options: dict[str, Any], crop_size: int) -> None:
    """The grid and flags of a recipe's vision options, refused in one line (run as soon as the tower's crop
    size is known, before the language model and connector load)."""
    pinpoints = vision_options.get("image_grid_pinpoints")
    if pinpoints is None:
        return
    check_grid(pinpoints, crop_size, f"{OPTIONS_KEY}.image_grid_pinpoints")
    for flag in ("unpad", "newline"):
        value = vision_options.get(flag, True)
        if not isinstance(value, bool):
            raise RecipeError(f"{OPTIONS_KEY}.{flag}: {value!r}; expected true or false")


def tiling_for(model_spec: dict[str, Any], crop_size: int, tokens_per_crop: int) -> Tiling | None:
    """The tiling a model spec asks for (``None``: fixed-size images), its values checked in one line each."""
    options = dict((model_spec.get("vision") or {}).get("options") or {})
    if options.get("image_grid_pinpoints") is None:
        cap = options.get("max_image_tokens")
        if cap is not None:
            raise RecipeError(f"{OPTIONS_KEY}.max_image_tokens: {cap!r} without image_grid_pinpoints; a fixed-size "
                              f"image always has {tokens_per_crop} tokens (set image_grid_pinpoints, or null the cap)")
        return None
    check_grid_early(options, crop_size)
    side = math.isqrt(tokens_per_crop)
    if side * side != tokens_per_crop:
        raise RecipeError(f"{OPTIONS_KEY}.image_grid_pinpoints: tiling lays each crop's image tokens out as a square "
                          f"grid, but the tower and connector give {tokens_per_crop} per crop; expected a square "
                          "number (feature_select 'patch', a connector that keeps a square grid)")
    cap = check_token_cap(options.get("max_image_tokens"), tokens_per_crop, f"{OPTIONS_KEY}.max_image_tokens")
    pinpoints = check_grid(options["image_grid_pinpoints"], crop_size, f"{OPTIONS_KEY}.image_grid_pinpoints")
    return Tiling(tuple(pinpoints), crop_size, side, cap, options.get("unpad", True), options.get("newline", True))


def tiled_pixels(transform: Any, tiling: Tiling, image: Image.Image) -> torch.Tensor:
    """``[1 + crops, 3, S, S]``: the thumbnail then the crops row by row, each through the tower's transform.

    The picture is first brought to RGB as the transform would (16-bit, alpha and palette modes included), so
    tiling cuts the same pixels the tower would otherwise see whole."""
    return transform.batch(tile_image(_as_rgb(transform, image), tiling.pinpoints, tiling.crop_size).images)


def _as_rgb(transform: Any, image: Image.Image) -> Image.Image:
    from medzoo.core.model.image_processing import to_rgb_or_greyscale

    options = {key: getattr(transform, key) for key in ("high_bit_depth", "alpha") if hasattr(transform, key)}
    return to_rgb_or_greyscale(image, **options).convert("RGB")


def new_image_newline(dim: int) -> nn.Parameter:
    """LLaVA-NeXT's learned newline feature, initialised as its ``image_newline`` (``randn / sqrt(dim)``)."""
    return nn.Parameter(torch.randn(dim) / math.sqrt(dim))


def image_features(
    tiling: Tiling, crop_features: torch.Tensor, original_size: Size, newline: torch.Tensor | None
) -> torch.Tensor:
    """``[1 + crops, t * t, D]`` features of one image -> ``[tiling.token_count(original_size), D]``."""
    side = tiling.tokens_per_side
    (rows, columns), (kept_rows, kept_columns) = feature_grid(
        original_size, tiling.pinpoints, tiling.crop_size, side, tiling.unpad
    )
    if crop_features.shape[0] != 1 + rows * columns:
        raise ValueError(f"an image of size {original_size} tiles into {1 + rows * columns} crops, "
                         f"got features of {crop_features.shape[0]}")
    dim = crop_features.shape[-1]
    grid = crop_features[1:].reshape(rows, columns, side, side, dim).permute(4, 0, 2, 1, 3)
    grid = grid.reshape(dim, rows * side, columns * side)
    top, left = (rows * side - kept_rows) // 2, (columns * side - kept_columns) // 2
    grid = grid[:, top : top + kept_rows, left : left + kept_columns]
    if tiling.max_tokens is not None:
        target = capped_grid((kept_rows, kept_columns), tiling.max_tokens - side * side, tiling.newline)
        if target != (kept_rows, kept_columns):
            grid = (F.interpolate(grid[None].float(), size=target, mode="bilinear")[0].to(grid.dtype)
                    if target[0] else grid[:, :0, :0])
    if tiling.newline and grid.shape[1]:
        if newline is None:
            raise ValueError("tiling with newline tokens needs the model's image_newline parameter")
        grid = torch.cat([grid, newline.to(grid.dtype)[:, None, None].expand(dim, grid.shape[1], 1)], dim=2)
    return torch.cat([crop_features[0], grid.flatten(1).transpose(0, 1)], dim=0)


def split_crops(tiling: Tiling, features: torch.Tensor, sizes: Sequence[Size]) -> list[torch.Tensor]:
    """The tower's features of every crop of a batch cut back into one tensor per image."""
    counts = [tiling.crop_count(size) for size in sizes]
    if sum(counts) != features.shape[0]:
        raise ValueError(f"{len(sizes)} image(s) of sizes {list(sizes)} tile into {sum(counts)} crops, "
                         f"got {features.shape[0]} crop(s) of pixels")
    return list(torch.split(features, counts))
