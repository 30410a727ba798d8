"""``multigranularity``: ColonGPT-style token reducer (project, then average-pool the patch grid at several sizes).

The patch tokens are projected by a GELU MLP (as ``mlp{depth}x_gelu``), laid out on their square grid and
adaptively average-pooled to each grid side in ``grids``; the pooled tokens (row-major, finest grid first)
are concatenated. ColonGPT pools a 27x27 SigLIP grid to 14x14, 7x7 and 1x1: 246 tokens instead of 729.

Grid rule: for an input grid of side S, the finest grid may be at most ``ceil(S / 2)`` (a pooling that does
not reduce is pointless). If the largest requested grid is larger, every grid is scaled by
``ceil(S / 2) / max(grids)``, rounded half up, at least 1, and duplicates are dropped. So the default
``[14, 7, 1]`` stays as is on 27x27, becomes ``[12, 6, 1]`` on CLIP-336's 24x24, ``[8, 4, 1]`` on 16x16 and
``[4, 2, 1]`` on 8x8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medzoo import Connector, RecipeError
from medzoo.plugins.connectors.mlp import gelu_mlp

DEFAULT_GRIDS: tuple[int, ...] = (14, 7, 1)


def fit_grids(grids: Sequence[int], side: int) -> list[int]:
    """Apply the grid rule above to ``grids`` for an input grid of ``side`` x ``side`` patches."""
    if not grids or any(not isinstance(grid, int) or isinstance(grid, bool) or grid < 1 for grid in grids):
        raise RecipeError(
            f"connector 'multigranularity': grids must be positive integers, got {list(grids)!r}"
        )
    cap = math.ceil(side / 2)
    largest = max(grids)
    if largest > cap:
        grids = [max(1, math.floor(grid * cap / largest + 0.5)) for grid in grids]
    return list(dict.fromkeys(grids))


class MultiGranularityConnector(Connector):
    """Projection (``layers``: Linear, then ``depth - 1`` times GELU + Linear) followed by multi-grid pooling."""

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        grids: Sequence[int] = DEFAULT_GRIDS,
        depth: int = 2,
        **options: Any,
    ):
        side = math.isqrt(num_input_tokens)
        if side * side != num_input_tokens:
            raise RecipeError(
                f"connector 'multigranularity' needs a square grid of patch tokens, got {num_input_tokens} tokens; "
                "use the vision encoder's feature_select 'patch' (a class token makes the count non-square)"
            )
        if not isinstance(depth, int) or depth < 1:
            raise RecipeError(
                f"connector 'multigranularity': depth must be a positive integer, got {depth!r}"
            )
        super().__init__(vision_dim, language_dim, num_input_tokens)
        self.side = side
        self.grids = fit_grids(list(grids), side)
        self.depth = depth
        self.layers = gelu_mlp(vision_dim, language_dim, depth)

    @property
    def num_output_tokens(self) -> int:
        return sum(grid * grid for grid in self.grids)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = features.shape
        if tokens != self.num_input_tokens:
            raise ValueError(
                f"multigranularity connector built for {self.num_input_tokens} tokens, got {tokens}"
            )
        projected = self.layers(features)
        grid = projected.transpose(1, 2).reshape(batch, self.language_dim, self.side, self.side)
        pooled = [F.adaptive_avg_pool2d(grid, size).flatten(2).transpose(1, 2) for size in self.grids]
        return torch.cat(pooled, dim=1)

    def options(self) -> dict[str, Any]:
        return {"grids": list(self.grids), "depth": self.depth}
